"""The finite check, through torch: every value a tensor holds as torch reads it (byte order,
dtype, view), a chunk of at most CHUNK_ELEMENTS at a time, so memory stays bounded whatever the
model's size. Runs in the checker's child process only (it imports nothing but what it is given).
"""

from __future__ import annotations

from typing import Any

CHUNK_ELEMENTS = 1 << 20
# formats with no NaN or Inf encoding at all: finite by construction
NO_NAN_DTYPES = {"float4_e2m1fn_x2"}


class Failed(Exception):
    """The file fails the check; the message is the reason for the verdict."""

    def __init__(self, reason: str, check: str = "loads_safely", found: Any = None) -> None:
        super().__init__(reason)
        self.check = check  # which check failed: "loads_safely" or "finite"
        self.found = found or {}  # what loaded before the values failed: format, tensors


def _chunks(torch: Any, t: Any) -> Any:
    """Views of ``t`` of at most CHUNK_ELEMENTS elements each, covering every element of it.

    Broadcast dimensions (stride 0) repeat the same elements, so they are narrowed to one
    first: a 601-byte file can claim 2**62 elements that way. A view that still reads each
    element many times (overlapping strides) is checked over the span of storage it covers."""
    for d in range(t.dim()):
        if t.stride(d) == 0 and t.shape[d] > 1:
            t = t.narrow(d, 0, 1)
    covered = 1 + sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride(), strict=True))
    if t.numel() > 4 * covered:
        low = t.storage_offset() + sum(
            (s - 1) * st for s, st in zip(t.shape, t.stride(), strict=True) if st < 0
        )
        t = t.as_strided((covered,), (1,), low)
    stack = [t]
    while stack:
        v = stack.pop()
        n = v.numel()
        if n <= CHUNK_ELEMENTS or v.dim() == 0:
            yield v
        elif v.is_contiguous():
            flat = v.reshape(-1)
            for i in range(0, n, CHUNK_ELEMENTS):
                yield flat[i : i + CHUNK_ELEMENTS]
        else:
            rows = v.shape[0]
            per_row = n // rows
            if per_row <= CHUNK_ELEMENTS:
                step = CHUNK_ELEMENTS // per_row
                for i in range(0, rows, step):
                    yield v[i : i + step]
            else:
                stack.extend(v[i] for i in reversed(range(rows)))


def _chunk_finite(torch: Any, chunk: Any) -> bool:
    try:
        return bool(torch.isfinite(chunk).all())
    except (RuntimeError, NotImplementedError, TypeError):
        pass
    wider = torch.complex64 if chunk.dtype.is_complex else torch.float32
    try:
        return bool(torch.isfinite(chunk.to(wider)).all())
    except (RuntimeError, NotImplementedError, TypeError):
        dtype = str(chunk.dtype).removeprefix("torch.")
        why = f"values of dtype {dtype} cannot be checked for NaN or Inf"
        raise Failed(why, "finite") from None


def _dense_finite(torch: Any, t: Any) -> bool:
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype in NO_NAN_DTYPES:
        return True
    if t.is_quantized:
        return all(_chunk_finite(torch, c.dequantize()) for c in _chunks(torch, t))
    if not (t.dtype.is_floating_point or t.dtype.is_complex):
        return True
    return all(_chunk_finite(torch, c) for c in _chunks(torch, t))


def finite(torch: Any, name: str, t: Any) -> bool:
    """True when every value torch sees in ``t`` is finite; Failed for what holds no values."""
    if t.is_meta:
        raise Failed(f"tensor {name} is on the meta device: it holds no values", "finite")
    layout = t.layout
    if layout == torch.strided:
        return _dense_finite(torch, t)
    if layout == torch.sparse_coo:
        return _dense_finite(torch, t._values())
    if layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc):
        return _dense_finite(torch, t.values())
    raise Failed(f"tensor {name} has layout {layout}, whose values cannot be checked", "finite")
