"""Pure-Python stand-in for the safetensors package (local tests of train.py only)."""
