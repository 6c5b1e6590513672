#!/usr/bin/env bash
# Configures and builds coldstream into build/ (Release). Extra arguments go to cmake.
# The CUDA backend builds when nvcc is found (CS_CUDA=AUTO), for sm_89 and sm_90 only.
set -euo pipefail
cd "$(dirname "$0")/.."
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@" >/dev/null
cmake --build build
