"""Read a checkpoint's tensors one chunk at a time, without executing anything in it.

``open_checkpoint(path)`` returns a ``Checkpoint`` listing its tensors (dotted names for nested
state dicts, dtype, shape); ``TensorInfo.byte_chunks()`` yields the tensor's raw bytes a few MB at
a time, so a finite check or a diff of a 50 GB model holds one chunk in memory, never the model.

- torch zip files (``.pth``/``.pt`` since torch 1.6): the structure comes from
  ``torch.load(weights_only=True, mmap=True)`` — torch's own restricted unpickler, so a checkpoint
  that needs arbitrary pickled objects is refused and nothing in it runs; ``mmap`` reads no tensor
  data. The values are then read with plain file reads from the zip members ``<archive>/data/<key>``
  (stored uncompressed). Touching the mmap'ed tensors would count every page in our RSS.
  Storage -> zip member: torch maps the whole file once and each storage is a slice of that map,
  so ``storage.data_ptr() - member_offset`` is the same base address for every storage. We derive
  the base and require every storage to agree (and its size to equal its member's size); that is
  simpler than a second, restricted unpickler of data.pkl that could disagree with torch's, and it
  is checked rather than assumed. When it does not hold, or a tensor is a strided view of a larger
  storage, that tensor's values are read through the mmap'ed tensor instead (still one at a time).
- legacy (non-zip) torch files: a plain ``weights_only`` load; tensors are then in memory.
- ``.safetensors``: the 8-byte length and JSON header are parsed here, as untrusted input: the
  header size is bounded, and every tensor's byte range must lie inside the file, match
  dtype size x number of elements, and not overlap another. The ``safetensors`` package is not used.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.checkpoint.torch_import import torch as _torch
from agent.checkpoint.walk import WalkLimit, tensors_in

CHUNK_BYTES = 4 * 1024 * 1024
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
SAFETENSORS_EXT = ".safetensors"

# safetensors dtype -> (torch dtype name, bytes per element)
SAFETENSORS_DTYPES = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}


class CheckpointError(Exception):
    """The file cannot be read safely as a checkpoint; the message says why (for a report)."""


class UnsafeCheckpoint(CheckpointError):
    """Loading would need arbitrary pickled objects; refused, nothing was executed."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # torch dtype name without "torch.", e.g. "float32"
    shape: tuple[int, ...]
    _chunks: Callable[[int], Iterator[Any]] = field(repr=False, compare=False)

    @property
    def torch_dtype(self) -> Any:
        return getattr(_torch(), self.dtype)

    @property
    def floating(self) -> bool:
        dt = self.torch_dtype
        return bool(dt.is_floating_point or dt.is_complex)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.torch_dtype.itemsize

    def byte_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
        """1-D uint8 tensors over the tensor's bytes, a whole number of elements each. A chunk is
        only valid until the next one is requested (its buffer is reused)."""
        itemsize = self.torch_dtype.itemsize
        return self._chunks(max(itemsize, chunk_bytes - chunk_bytes % itemsize))

    def value_chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
        dtype = self.torch_dtype
        for raw in self.byte_chunks(chunk_bytes):
            yield raw.view(dtype)


@dataclass
class Checkpoint:
    path: Path
    format: str  # "torch-zip" | "torch-legacy" | "safetensors"
    tensors: list[TensorInfo]
    _keep: Any = field(default=None, repr=False)  # the loaded object: the mmap lives while we do

    def signature(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """name -> (dtype, shape): what the structure check compares."""
        return {t.name: (t.dtype, t.shape) for t in self.tensors}

    def close(self) -> None:
        self._keep = None
        self.tensors = []

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_checkpoint(path: Path, *, safetensors: bool | None = None) -> Checkpoint:
    """Open ``path`` for reading; raises CheckpointError (UnsafeCheckpoint for a pickle that
    needs arbitrary objects). ``safetensors``: the format when the suffix does not say."""
    path = Path(path)
    if path.is_dir():
        return _open_tree(path)
    if not path.is_file():
        raise CheckpointError("missing or not a file")
    if path.stat().st_size == 0:
        raise CheckpointError("empty file")
    if safetensors is None:
        safetensors = path.suffix == SAFETENSORS_EXT
    if safetensors:
        return _open_safetensors(path)
    return _open_torch(path)


def _open_tree(path: Path) -> Checkpoint:
    """A model saved as a directory: the tensors of every checkpoint file in it, as one."""
    suffixes = (".safetensors", ".bin", ".pt", ".pth")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes)
    if not files:
        raise CheckpointError(
            "no checkpoint file in it (the values of a DCP checkpoint are not read)"
        )
    parts = [open_checkpoint(p) for p in files]
    return Checkpoint(path, "directory", [t for c in parts for t in c.tensors], _keep=parts)


# -- torch -----------------------------------------------------------------------------------


def _flatten(obj: Any, torch: Any) -> dict[str, Any]:
    """Tensors of a (possibly nested) state dict, keyed by dotted path; other leaves (a learning
    rate, an epoch number) are not tensors and are skipped. Iterative and bounded: a pickle can
    share one tuple 2**60 ways or nest 200,000 levels deep."""
    try:
        return dict(tensors_in(obj, lambda v: isinstance(v, torch.Tensor)))
    except WalkLimit as exc:
        raise CheckpointError(f"not a state dict: it {exc}") from None


def _torch_load(path: Path, *, mmap: bool) -> Any:
    torch = _torch()
    try:
        with warnings.catch_warnings():
            # a legacy pickle's protocol note is noise: the restricted loader still decides
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # weights_only refused: the file wants to build arbitrary objects (or run code). torch's
        # message advises weights_only=False or allow-listing the global: not advice to relay.
        found = _GLOBAL_RE.search(str(exc))
        wants = f"it asks for {found.group(1)}" if found else "it is not a plain state dict"
        raise UnsafeCheckpoint(
            "refused: the checkpoint needs arbitrary pickled objects, which could run code; "
            f"nothing was executed ({wants}). Save a plain state_dict (or safetensors) instead"
        ) from None
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(f"cannot load: {type(exc).__name__}: {exc}"[:300]) from None


def _member_offsets(path: Path) -> dict[int, tuple[str, int]]:
    """File offset of each stored ``<archive>/data/<key>`` member -> (key, size)."""
    out: dict[int, tuple[str, int]] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if len(parts) < 3 or parts[-2] != "data" or info.compress_type != zipfile.ZIP_STORED:
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                continue
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            out[info.header_offset + 30 + name_len + extra_len] = (parts[-1], info.file_size)
    return out


def _mmap_base(storages: dict[int, int], members: dict[int, tuple[str, int]]) -> int | None:
    """The address torch mapped the file at, when every storage lines up with a data member."""
    if not storages or not members:
        return None
    base = min(storages) - min(members)
    for ptr, nbytes in storages.items():
        member = members.get(ptr - base)
        if member is None or member[1] != nbytes:
            return None
    return base


def _open_torch(path: Path) -> Checkpoint:
    torch = _torch()
    is_zip = zipfile.is_zipfile(path)
    obj = _torch_load(path, mmap=is_zip)
    found = _flatten(obj, torch)
    if not found:
        raise CheckpointError("no tensors found in the checkpoint")
    base = members = None
    if is_zip:
        storages = {}
        for t in found.values():
            st = t.untyped_storage()
            if st.nbytes() > 0:
                storages[st.data_ptr()] = st.nbytes()
        try:
            members = _member_offsets(path)
        except (OSError, zipfile.BadZipFile):
            members = {}
        base = _mmap_base(storages, members)
        sizes = sorted(size for _, size in members.values() if size > 0)
        if base is None and members and sorted(storages.values()) != sizes:
            # torch maps the whole file and does not check each storage against its member: a
            # short member would silently lend bytes of the next one to a tensor
            raise CheckpointError(
                "the tensors' data does not match the archive's data records "
                "(a damaged or edited file)"
            )
    tensors = []
    for name, t in found.items():
        dtype = str(t.dtype).removeprefix("torch.")
        st = t.untyped_storage()
        whole = (
            base is not None
            and t.is_contiguous()
            and t.storage_offset() == 0
            and t.numel() * t.element_size() == st.nbytes() > 0
            and dtype in _FILE_READABLE
        )
        chunks = _file_chunks(path, st.data_ptr() - base, st.nbytes()) if whole else _view_chunks(t)
        tensors.append(TensorInfo(name, dtype, tuple(t.shape), chunks))
    return Checkpoint(path, "torch-zip" if is_zip else "torch-legacy", tensors, obj)


_FILE_READABLE = {name for name, _ in SAFETENSORS_DTYPES.values()} | {"complex64", "complex128"}


def _file_chunks(path: Path, offset: int, nbytes: int) -> Callable[[int], Iterator[Any]]:
    def chunks(chunk_bytes: int) -> Iterator[Any]:
        torch = _torch()
        buf = bytearray(min(chunk_bytes, nbytes))
        view = memoryview(buf)
        with open(path, "rb") as fh:
            fh.seek(offset)
            left = nbytes
            while left > 0:
                want = min(left, len(buf))
                got = fh.readinto(view[:want])
                if not got:
                    raise CheckpointError(f"file ends {left} bytes before a tensor's data does")
                while got < want:  # short reads are legal; finish the chunk
                    more = fh.readinto(view[got:want])
                    if not more:
                        raise CheckpointError("file ends before a tensor's data does")
                    got += more
                left -= want
                yield torch.frombuffer(view[:want], dtype=torch.uint8)

    return chunks


def _view_chunks(tensor: Any) -> Callable[[int], Iterator[Any]]:
    """Chunks through the tensor itself: a strided view or a legacy file. reshape copies a
    non-contiguous view, so memory is bounded by this tensor, not the model."""

    def chunks(chunk_bytes: int) -> Iterator[Any]:
        torch = _torch()
        # contiguous() so every part has stride 1 (a 1-element slice of a strided view keeps its
        # stride, and view(uint8) refuses it); a copy of this one tensor at most
        flat = tensor.reshape(-1).contiguous()
        if flat.numel() == 0:
            return
        per = max(1, chunk_bytes // flat.element_size())
        for part in flat.split(per):
            yield part.view(torch.uint8)

    return chunks


# -- safetensors ------------------------------------------------------------------------------


def read_safetensors_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(data start offset, header) after checking every claim the header makes."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise CheckpointError("too short for a safetensors file")
        (length,) = struct.unpack("<Q", raw)
        if length > MAX_SAFETENSORS_HEADER:
            raise CheckpointError(f"safetensors header claims {length} bytes (limit 100 MB)")
        if length > size - 8:
            raise CheckpointError("safetensors header is longer than the file (truncated?)")
        try:
            header = json.loads(fh.read(length))
        except (ValueError, UnicodeDecodeError, RecursionError):  # "[[[[..." nests past the stack
            raise CheckpointError("safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError("safetensors header is not a JSON object")
    data_size = size - 8 - length
    ranges = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        ranges.append((*_checked_entry(name, info, data_size), name))
    ranges.sort()
    for (_, end_a, name_a), (start_b, _, name_b) in itertools.pairwise(ranges):
        if start_b < end_a:
            raise CheckpointError(f"safetensors tensors {name_a} and {name_b} overlap")
    return 8 + length, header


def _checked_entry(name: str, info: Any, data_size: int) -> tuple[int, int]:
    if not isinstance(info, dict):
        raise CheckpointError(f"safetensors entry {name!r} is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPES:
        raise CheckpointError(f"tensor {name}: unknown safetensors dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise CheckpointError(f"tensor {name}: shape {shape!r} is not a list of sizes")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise CheckpointError(f"tensor {name}: data_offsets {offsets!r} is not [begin, end]")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise CheckpointError(
            f"tensor {name}: bytes {begin}..{end} lie outside the file's {data_size} data bytes"
        )
    need = math.prod(shape) * SAFETENSORS_DTYPES[dtype][1]
    if end - begin != need:
        raise CheckpointError(
            f"tensor {name}: header gives {end - begin} bytes but {dtype} x {shape} needs {need}"
        )
    return begin, end


def _open_safetensors(path: Path) -> Checkpoint:
    start, header = read_safetensors_header(path)
    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = SAFETENSORS_DTYPES[info["dtype"]][0]
        chunks = _file_chunks(path, start + begin, end - begin) if end > begin else _no_chunks
        tensors.append(TensorInfo(name, dtype, tuple(info["shape"]), chunks))
    if not tensors:
        raise CheckpointError("no tensors found in the checkpoint")
    return Checkpoint(path, "safetensors", tensors)


def _no_chunks(chunk_bytes: int) -> Iterator[Any]:
    return iter(())
