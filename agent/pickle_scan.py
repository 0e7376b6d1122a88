"""The push's structural check without torch: does the checkpoint load safely, are its floating
values finite? ``scan_checkpoint(path)`` answers "ok", "bad" or "unknown" (hand it to torch).

Why not torch: the check used to run in a child that imports torch, which alone peaks at ~218 MB
RSS, so a push could never stay under issue 7's 150 MB. A torch zip checkpoint is simple enough to
read directly: ``<archive>/data.pkl`` is a pickle whose tensors are
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` calls (``_v3`` with an
explicit dtype for dtypes without a legacy storage class), each storage a persistent id
``("storage", <storage class>, key, location, numel)`` naming the uncompressed member
``<archive>/data/<key>``.

- The pickle goes through a restricted ``pickle.Unpickler`` whose ``find_class`` knows only the
  names torch writes for a state dict; each maps to a local stub that records the tensor's
  storage, dtype, offset, shape and stride, never to a torch object, so nothing in the file runs.
  A global torch's ``weights_only`` loader refuses too (``os.system``, ``builtins.eval``: anything
  outside torch and its six non-torch names) is "bad"; any other surprise (a torch name we do not
  model, an odd persistent id, a pickle or zip error, a truncated file) is "unknown", never "ok".
- Finite: a float is NaN or Inf iff its exponent bits are all ones; numpy checks that on the raw
  bytes of each storage's member, read a few MB at a time. The whole storage is checked, not just
  the viewed range: a NaN outside a slice is still a NaN in the file, and refusing it is simpler
  than computing every view's footprint (torch's check, which reads views only, may pass it).
- ``.safetensors``: the header parser of ``agent.checkpoint_reader`` (it imports no torch).

Memory: one chunk plus the pickle's own objects; the pickle is bounded (MAX_PICKLE_BYTES) because
this runs inside the long-running push. Imports: numpy only.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import pickletools
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_BYTES = 4 * 1024 * 1024
# A state dict's pickle is ~100 bytes per tensor (1-2 MB for a large LLM); unpickling can grow
# several-fold in memory, and this runs in the push's own process.
MAX_PICKLE_BYTES = 32 * 1024 * 1024

# dtype -> (itemsize, raw little-endian integer type, exponent mask); mask None: no check needed
_DTYPES: dict[str, tuple[int, str, int | None]] = {
    "float64": (8, "<u8", 0x7FF0000000000000),
    "float32": (4, "<u4", 0x7F800000),
    "float16": (2, "<u2", 0x7C00),
    "bfloat16": (2, "<u2", 0x7F80),
    **{f"int{b}": (b // 8, "u1", None) for b in (8, 16, 32, 64)},
    **{f"uint{b}": (b // 8, "u1", None) for b in (8, 16, 32, 64)},
    "bool": (1, "u1", None),
}
_STORAGE_CLASSES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
# Non-torch globals torch's weights_only loader accepts (torch/_weights_only_unpickler.py,
# _get_allowed_globals). Any other non-torch global it refuses, so we may call it "bad".
_TORCH_ALLOWS = {
    "collections.OrderedDict",
    "collections.Counter",
    "_codecs.encode",
    "builtins.bytearray",
    "builtins.set",
    "builtins.complex",
}


@dataclass
class ScanResult:
    status: str  # "ok" | "bad" | "unknown"
    problems: list[str] = field(default_factory=list)


class _Unknown(Exception):
    """Something we do not model; torch decides."""


class _Refused(Exception):
    """A global torch's weights_only loader refuses as well."""


class _Stub:
    """Base of what the file's globals resolve to. The pickle's BUILD opcode sets state on an
    object; torch allows it on tensors, we model none, so it makes the file "unknown". (A frozen
    dataclass with slots=True would get a __setstate__ that bypasses frozen: hence no slots.)"""

    def __setstate__(self, state: Any) -> None:
        raise _Unknown("state set on a tensor or storage (BUILD)")


@dataclass(frozen=True)
class _Call(_Stub):
    """A rebuild function of ours, wrapped so that the pickle cannot set attributes on it."""

    fn: Callable[..., Any]

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


@dataclass(frozen=True)
class _StorageType(_Stub):
    dtype: str | None  # None: torch.storage.UntypedStorage (numel counts bytes)


@dataclass(frozen=True)
class _Dtype(_Stub):
    name: str


@dataclass(frozen=True)
class _Storage(_Stub):
    key: str
    dtype: str | None
    numel: int


@dataclass(frozen=True)
class _Tensor(_Stub):
    storage: _Storage
    dtype: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        type(v) is int and v >= 0 for v in value
    ):  # bool is an int subclass: type() keeps it out
        raise _Unknown(f"{what} {value!r} is not a tuple of sizes")
    return value


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: str | None) -> _Tensor:
    if not isinstance(storage, _Storage) or type(offset) is not int or offset < 0:
        raise _Unknown("a tensor without a plain storage and offset")
    shape, steps = _ints(size, "size"), _ints(stride, "stride")
    if len(shape) != len(steps) or dtype not in _DTYPES:
        raise _Unknown(f"a tensor of dtype {dtype} or mismatched size and stride")
    if storage.dtype is not None and storage.dtype != dtype:
        raise _Unknown("a tensor whose dtype differs from its storage's")
    if all(shape):  # torch refuses a view reaching past its storage; let it say so
        last = offset + sum((n - 1) * s for n, s in zip(shape, steps, strict=True))
        elements = storage.numel if storage.dtype else storage.numel // _DTYPES[dtype][0]
        if last >= elements:
            raise _Unknown("a tensor reaching past its storage")
    return _Tensor(storage, dtype, offset, shape, steps)


def _rebuild_tensor_v2(
    storage: Any, offset: Any, size: Any, stride: Any, grad: Any, hooks: Any, metadata: Any = None
) -> _Tensor:
    return _tensor(storage, offset, size, stride, getattr(storage, "dtype", None))


def _rebuild_tensor_v3(
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    grad: Any,
    hooks: Any,
    dtype: Any,
    metadata: Any = None,
) -> _Tensor:
    if not isinstance(dtype, _Dtype):
        raise _Unknown("a tensor whose dtype is not a torch dtype")
    return _tensor(storage, offset, size, stride, dtype.name)


def _rebuild_parameter(data: Any, requires_grad: Any, hooks: Any) -> _Tensor:
    if not isinstance(data, _Tensor):
        raise _Unknown("a parameter that is not a tensor")
    return data


def _allowed(module: str, name: str) -> Any:
    """The stub for a global torch writes in a state dict; raises for every other global."""
    full = f"{module}.{name}"
    if full == "collections.OrderedDict":
        return OrderedDict  # a dict subclass: building one runs nothing of the file's
    if module == "torch._utils":
        found = {
            "_rebuild_tensor_v2": _rebuild_tensor_v2,
            "_rebuild_tensor_v3": _rebuild_tensor_v3,
            "_rebuild_parameter": _rebuild_parameter,
        }.get(name)
        if found:
            return _Call(found)
    if module == "torch" and name in _STORAGE_CLASSES:
        return _StorageType(_STORAGE_CLASSES[name])
    if full == "torch.storage.UntypedStorage":
        return _StorageType(None)
    if module == "torch" and name in _DTYPES:
        return _Dtype(name)
    if module == "torch" or module.startswith("torch.") or full in _TORCH_ALLOWS:
        raise _Unknown(f"unmodelled global {full}")
    if module in _compat_pickle.IMPORT_MAPPING or (module, name) in _compat_pickle.NAME_MAPPING:
        raise _Unknown(f"Python 2 name {full}")  # torch renames these first, then decides
    raise _Refused(full)


# The opcodes torch's weights_only unpickler implements (torch/_weights_only_unpickler.py); it
# refuses any other (STACK_GLOBAL, INST, FRAME, ...), so such a pickle is not "ok" here either.
_OPCODE_NAMES = (
    "APPEND APPENDS BINFLOAT BINGET BININT BININT1 BININT2 BINPERSID BINPUT BINUNICODE BUILD "
    "EMPTY_DICT EMPTY_LIST EMPTY_SET EMPTY_TUPLE GLOBAL LONG1 LONG_BINGET LONG_BINPUT MARK "
    "NEWFALSE NEWOBJ NEWTRUE NONE PROTO REDUCE SETITEM SETITEMS SHORT_BINSTRING STOP TUPLE "
    "TUPLE1 TUPLE2 TUPLE3"
)
_TORCH_OPCODES = frozenset(_OPCODE_NAMES.split())


def _check_opcodes(stream: Any) -> None:
    """A pass over the pickle that builds nothing: every opcode one torch implements, every
    global one we model (or "bad": one torch refuses), in the order torch meets them."""
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name not in _TORCH_OPCODES:
            raise _Unknown(f"pickle opcode {opcode.name}")
        if opcode.name == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            _allowed(module, name)


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: Any) -> None:
        super().__init__(fh)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        return _allowed(module, name)

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise _Unknown(f"persistent id {str(pid)[:80]}")
        _, kind, key, location, numel = pid
        if not (isinstance(kind, _StorageType) and isinstance(key, str)):
            raise _Unknown("a storage of an unmodelled type")
        if not isinstance(location, str) or type(numel) is not int or numel < 0:
            raise _Unknown("a storage without a location or size")
        storage = _Storage(key, kind.dtype, numel)
        if self.storages.setdefault(key, storage) != storage:  # torch shares by key
            raise _Unknown(f"storage {key} declared twice, differently")
        return storage


def _tensors(obj: Any, prefix: str, out: dict[str, _Tensor]) -> None:
    """Dotted names of the tensors, as agent.checkpoint_reader names them (for the report)."""
    if isinstance(obj, _Tensor):
        out[prefix or "<root>"] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _tensors(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _tensors(value, f"{prefix}.{i}" if prefix else str(i), out)


def _data_offset(fh: Any, info: zipfile.ZipInfo) -> int:
    """Where a member's bytes start: after its local header, whose extra field (torch pads it to
    align the data) may differ in length from the central directory's."""
    fh.seek(info.header_offset)
    local = fh.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise _Unknown(f"no local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    if fh.read(name_len) != info.filename.encode():
        raise _Unknown(f"local header of {info.filename} names another file")
    return info.header_offset + 30 + name_len + extra_len


def _finite(fh: Any, offset: int, nbytes: int, dtype: str) -> bool:
    """No value of ``dtype`` in the ``nbytes`` at ``offset`` has all exponent bits set."""
    _, raw, mask = _DTYPES[dtype]
    if mask is None:
        return True
    buf = bytearray(min(CHUNK_BYTES, nbytes))
    view = memoryview(buf)
    fh.seek(offset)
    left = nbytes
    while left > 0:
        want = min(left, len(buf))
        got = 0
        while got < want:  # short reads are legal; finish the chunk
            more = fh.readinto(view[got:want])
            if not more:
                raise _Unknown("the file ends inside a tensor's data")
            got += more
        values = np.frombuffer(view[:want], dtype=raw)
        if ((values & mask) == mask).any():
            return False
        left -= want
    return True


def _scan_zip(path: Path) -> ScanResult:
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        prefix = names[0].split("/")[0] if names else ""
        if len(set(names)) != len(names) or not all(n.startswith(prefix + "/") for n in names):
            raise _Unknown("not a single torch archive")
        if f"{prefix}/byteorder" in names and zf.read(f"{prefix}/byteorder") != b"little":
            raise _Unknown("big-endian data")
        pkl = zf.getinfo(f"{prefix}/data.pkl")  # KeyError: not a torch archive
        if pkl.file_size > MAX_PICKLE_BYTES:
            raise _Unknown(f"data.pkl is {pkl.file_size} bytes")
        with zf.open(pkl) as stream:
            _check_opcodes(stream)
        with zf.open(pkl) as stream:
            unpickler = _Unpickler(stream)
            root = unpickler.load()
        found: dict[str, _Tensor] = {}
        _tensors(root, "", found)
        if not found:
            raise _Unknown("no tensors found")
        dtypes: dict[str, str] = {}  # storage key -> the dtype its values are read as
        for t in found.values():
            if dtypes.setdefault(t.storage.key, t.dtype) != t.dtype:
                raise _Unknown(f"storage {t.storage.key} read as two dtypes")
        bad_keys = set()
        for key, storage in unpickler.storages.items():
            dtype = dtypes.get(key, storage.dtype)
            if dtype is None:
                raise _Unknown(f"storage {key} has no dtype")
            nbytes = storage.numel * (_DTYPES[dtype][0] if storage.dtype else 1)
            info = zf.getinfo(f"{prefix}/data/{key}")  # KeyError: torch fails too; it decides
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != nbytes:
                raise _Unknown(f"member data/{key} is compressed or not {nbytes} bytes")
            if nbytes and not _finite(fh, _data_offset(fh, info), nbytes, dtype):
                bad_keys.add(key)
    if not bad_keys:
        return ScanResult("ok")
    from agent.validate import listed

    bad = [name for name, t in found.items() if t.storage.key in bad_keys]
    bad += [f"storage {k}" for k in sorted(bad_keys - {t.storage.key for t in found.values()})]
    return ScanResult("bad", [f"NaN or infinite values in {listed(bad)}"])


def _scan_safetensors(path: Path) -> ScanResult:
    from agent.checkpoint_reader import SAFETENSORS_DTYPES, CheckpointError, read_safetensors_header
    from agent.validate import listed

    try:
        start, header = read_safetensors_header(path)
    except CheckpointError as exc:
        raise _Unknown(str(exc)) from None
    bad = []
    with open(path, "rb") as fh:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = SAFETENSORS_DTYPES[info["dtype"]][0]
            begin, end = info["data_offsets"]
            if dtype not in _DTYPES:
                raise _Unknown(f"tensor {name} has dtype {dtype}")
            if end > begin and not _finite(fh, start + begin, end - begin, dtype):
                bad.append(name)
    if len(header) - ("__metadata__" in header) == 0:
        raise _Unknown("no tensors found")
    return (
        ScanResult("bad", [f"NaN or infinite values in {listed(bad)}"]) if bad else ScanResult("ok")
    )


def scan_checkpoint(path: Path) -> ScanResult:
    """ "ok": loads safely under torch's weights_only rules and every floating value is finite;
    "bad": it must not be pushed (``problems`` say why; nothing in it ran); "unknown": this scan
    does not understand the file (legacy format, an unmodelled global or dtype, damage), so the
    torch-based check must decide."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            return _scan_safetensors(path)
        if not zipfile.is_zipfile(path):
            return ScanResult("unknown", ["not a torch zip checkpoint"])
        return _scan_zip(path)
    except _Refused as exc:
        return ScanResult(
            "bad",
            [
                "refused: the checkpoint needs arbitrary pickled objects, which could run code; "
                f"nothing was executed (it asks for {exc}). "
                "Save a plain state_dict (or safetensors) instead"
            ],
        )
    except _Unknown as exc:
        return ScanResult("unknown", [str(exc)])
    except Exception as exc:  # a damaged file raises anything; torch decides
        return ScanResult("unknown", [f"{type(exc).__name__}: {exc}"[:300]])
