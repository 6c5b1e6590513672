"""save_file / load_file in the safetensors format, standard library + torch (local tests only)."""
import json
import struct

import torch

_DT = {torch.float32: ("F32", torch.int32), torch.bfloat16: ("BF16", torch.int16),
       torch.float16: ("F16", torch.int16), torch.int32: ("I32", torch.int32)}
_BACK = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I32": torch.int32}


def save_file(tensors, path, metadata=None):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        code, view = _DT[t.dtype]
        b = t.view(view).numpy().tobytes() if t.dtype != view else t.numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def load_file(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        dt = _BACK[h["dtype"]]
        raw = bytearray(data[h["data_offsets"][0]:h["data_offsets"][1]])
        if dt in (torch.bfloat16, torch.float16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dt)
        else:
            t = torch.frombuffer(raw, dtype=dt)
        out[name] = t.reshape(h["shape"]).clone()
    return out
