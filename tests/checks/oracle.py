"""What torch itself says of a file, for the property test: ``torch.load(weights_only=True)``
succeeds and every floating value is finite. Deliberately naive (whole tensors, a plain
recursive walk), each file in a forked child with a memory cap, so a bomb costs the oracle
nothing. ``python -m tests.checks.oracle FILE...`` prints {name: true|false|null} (null: torch
could not answer within the cap)."""

from __future__ import annotations

import json
import os
import resource
import sys
import warnings

import torch

CAP = 2 * 1024**3


def _tensors(obj, out, seen):  # type: ignore[no-untyped-def]
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _tensors(v, out, seen)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _tensors(v, out, seen)


def _finite(t: torch.Tensor) -> bool:
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.is_quantized:
        t = t.dequantize()
    if t.dtype == torch.float4_e2m1fn_x2 or not (t.is_floating_point() or t.is_complex()):
        return True
    if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        t = t.float()
    return bool(torch.isfinite(t).all())


def judge(path: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj = load_file(path)
        else:
            with open(path, "rb") as fh:
                zipped = fh.read(4) == b"PK\x03\x04"
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    found: list[torch.Tensor] = []
    _tensors(obj, found, set())
    return bool(found) and all(_finite(t) for t in found)


def main(paths: list[str]) -> int:
    sys.setrecursionlimit(10_000)
    out = {}
    for path in paths:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_AS, (CAP + _vm(), CAP + _vm()))
            try:
                answer = b"1" if judge(path) else b"0"
            except BaseException:
                answer = b"0"
            os.write(w, answer)
            os._exit(0)
        os.close(w)
        got = os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        out[os.path.basename(path)] = {b"1": True, b"0": False}.get(got)
    print(json.dumps(out))
    return 0


def _vm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
