"""The confined checker: ``python -m agent.checks.child PATH FORMAT MEMORY CPU`` prints one JSON
line, the verdict. Run only by agent.checks.runner, which sets nothing but the arguments: the
limits are applied here, first the CPU time (import included), then, once torch is imported,
the address space relative to what the process already holds.

The file is judged by torch's own loader (``weights_only=True``, ``mmap=True``) or by the
safetensors library, never by a reading of our own; values are checked through torch, chunk by
chunk, so byte order, dtype and views mean what they mean to torch.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from agent.checkpoint.walk import WalkLimit, tensors_in
from agent.checks.explain import global_message, safetensors_message, torch_load_message
from agent.checks.pregate import Refused, inspect
from agent.checks.values import Failed, finite

SAFETENSORS_WHOLE_BYTES = 64 * 1024 * 1024  # larger tensors are read in row slices


class OutOfMemory(Exception):
    pass


def _limit_cpu(seconds: int) -> None:
    try:
        import resource
    except ImportError:  # Windows: the parent's wall-time limit still holds
        return
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))


def _limit_memory(extra: int) -> None:
    try:
        import resource
    except ImportError:
        return
    if not hasattr(resource, "RLIMIT_AS") or sys.platform == "darwin":
        return  # macOS does not enforce RLIMIT_AS; the wall-time limit still holds
    held = _vm_size()
    if held is not None:
        resource.setrlimit(resource.RLIMIT_AS, (held + extra, held + extra))


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` figure in KiB (Linux); None where there is no such file."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _vm_size() -> int | None:
    kib = _status_kib("VmSize")
    return None if kib is None else kib * 1024


def _peak_rss_mb() -> float | None:
    """VmHWM: this process's own peak (ru_maxrss would include the parent's at the fork)."""
    kib = _status_kib("VmHWM")
    return None if kib is None else round(kib / 1024, 1)


# -- torch files ----------------------------------------------------------------------------
def _storages(torch: Any, t: Any) -> list[Any]:
    if t.layout == torch.strided:
        return [] if t.is_meta else [t.untyped_storage()]
    if t.layout == torch.sparse_coo:
        return [s for part in (t._indices(), t._values()) for s in _storages(torch, part)]
    parts = []
    for attr in ("crow_indices", "ccol_indices", "col_indices", "row_indices", "values"):
        try:
            parts.append(getattr(t, attr)())
        except (RuntimeError, AttributeError):
            continue
    return [s for part in parts for s in _storages(torch, part)]


def _check_records(torch: Any, tensors: list[tuple[str, Any]], records: dict[int, Any]) -> None:
    """Every storage torch mapped must be exactly one data record of the archive. torch maps the
    whole file and slices it by the sizes data.pkl claims, without checking them against the
    records: a swapped or short size would lend a tensor another record's bytes."""
    spans = {}
    for _, t in tensors:
        for st in _storages(torch, t):
            if st.nbytes() > 0:
                spans[st.data_ptr()] = st.nbytes()
    if not spans:
        return
    offsets = sorted(records)
    lowest = min(spans)
    for start in offsets[:64]:  # the lowest storage is one of the first records
        base = lowest - start
        if all(
            (rec := records.get(ptr - base)) is not None and rec.size == n
            for ptr, n in spans.items()
        ):
            return
    raise Failed(
        "the sizes data.pkl gives its tensors do not match the archive's data records "
        "(a damaged or edited file)"
    )


def check_torch(path: Path, shape: Any) -> dict[str, Any]:
    from agent.checkpoint.torch_import import torch as _torch

    torch = _torch()
    torch.set_num_threads(1)
    zipped = shape.format == "torch-zip"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except MemoryError:
        raise
    except RuntimeError as exc:
        if _is_oom(exc):
            raise OutOfMemory from None
        raise Failed(_not_a_pickle(path) or torch_load_message(exc)) from None
    except Exception as exc:  # torch raises many types for damaged or hostile files
        raise Failed(_not_a_pickle(path) or _named_global(path, exc)) from None
    try:
        tensors = list(tensors_in(obj, lambda v: isinstance(v, torch.Tensor)))
    except WalkLimit as exc:
        raise Failed(f"not a state dict: it {exc}") from None
    if not tensors:
        raise Failed("no tensors in it: not a model checkpoint")
    if zipped:
        _check_records(torch, tensors, shape.data_records())
    return _judge(torch, tensors, "torch-zip" if zipped else "torch-legacy")


def _named_global(path: Path, exc: BaseException) -> str:
    """torch's message, or, when torch stopped at an opcode it does not read (a protocol 4
    pickle), what the pickle would have imported: disassembled, never executed, and only to
    word the refusal; torch already refused the file."""
    message = torch_load_message(exc)
    if "Unsupported operand" not in str(exc):
        return message
    import pickletools

    strings: list[str] = []
    try:
        with open(path, "rb") as fh:
            for count, (op, arg, _) in enumerate(pickletools.genops(fh)):
                if count > 100_000:
                    break
                if op.name == "GLOBAL" and isinstance(arg, str):
                    return global_message(arg.replace(" ", "."))
                if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    return global_message(f"{strings[-2]}.{strings[-1]}")
                if isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # a damaged pickle: torch's word stands
        return message
    return message


def _not_a_pickle(path: Path) -> str | None:
    """What the file is instead, when torch failed on a file that is not even a pickle (every
    torch checkpoint is a zip archive or starts with a pickle's protocol marker)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a torch checkpoint: neither a zip archive nor a pickle"
    if text.isprintable() or text.strip().isprintable():
        return f"not a torch checkpoint: a text file (starts with {text[:24].strip()!r})"
    return "not a torch checkpoint: neither a zip archive nor a pickle"


def _judge(torch: Any, tensors: list[tuple[str, Any]], fmt: str) -> dict[str, Any]:
    found = {
        "format": fmt,
        "tensors": {
            name: [str(t.dtype).removeprefix("torch."), list(t.shape)] for name, t in tensors
        },
    }
    try:
        bad = [name for name, t in tensors if not finite(torch, name, t)]
    except Failed as exc:
        raise Failed(str(exc), exc.check, found) from None
    if bad:
        raise Failed(_nan_message(bad), "finite", found)
    return found


def _nan_message(bad: list[str]) -> str:
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return f"NaN or infinite values in {', '.join(bad[:5])}{more}"


# -- safetensors ----------------------------------------------------------------------------
def check_safetensors(path: Path) -> dict[str, Any]:
    from agent.checkpoint.torch_import import torch as _torch

    torch = _torch()
    torch.set_num_threads(1)
    try:
        from safetensors import safe_open
    except ImportError:
        raise Failed("the safetensors library is not installed: pip install safetensors") from None
    signature: dict[str, list[Any]] = {}
    bad = []
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                piece = f.get_slice(name)
                dims = list(piece.get_shape())
                t = None
                for t in _safetensors_parts(f, name, piece, dims):
                    if not finite(torch, name, t):
                        bad.append(name)
                        break
                dtype = str(t.dtype).removeprefix("torch.") if t is not None else "?"
                signature[name] = [dtype, dims]
    except Failed:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        if _is_oom(exc):
            raise OutOfMemory from None
        raise Failed(safetensors_message(exc)) from None
    if not signature:
        raise Failed("no tensors in it: not a model checkpoint")
    found = {"format": "safetensors", "tensors": signature}
    if bad:
        raise Failed(_nan_message(bad), "finite", found)
    return found


def _safetensors_parts(f: Any, name: str, piece: Any, dims: list[int]) -> Any:
    numel = 1
    for d in dims:
        numel *= d
    first = f.get_tensor(name) if numel <= 1 or not dims else piece[0:1]
    if numel <= 1 or not dims:
        yield first
        return
    row_bytes = max(1, first.element_size() * (numel // dims[0]))
    if row_bytes * dims[0] <= SAFETENSORS_WHOLE_BYTES:
        yield f.get_tensor(name)
        return
    step = max(1, SAFETENSORS_WHOLE_BYTES // row_bytes)
    for i in range(0, dims[0], step):
        yield piece[i : i + step]


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        "can't allocate memory" in text
        or "cannot allocate memory" in text
        or (isinstance(exc, OSError) and exc.errno == 12)
    )


# -- entry point ----------------------------------------------------------------------------
def run(path: Path, fmt: str, memory: int, cpu: int) -> dict[str, Any]:
    started = time.process_time()
    _limit_cpu(cpu)
    from agent.checkpoint.torch_import import torch as _torch

    _torch()
    _limit_memory(memory)
    result: dict[str, Any] = {"ok": False}
    try:
        if fmt == "dcp":
            from agent.checks.dcp import read_dcp_metadata

            result |= read_dcp_metadata(path)
            result["ok"] = True
            return result
        shape = inspect(path, safetensors=fmt == "safetensors")
        if shape.format == "safetensors":
            result |= check_safetensors(path)
        else:
            result |= check_torch(path, shape)
        result["ok"] = True
    except Refused as exc:
        result["reason"] = str(exc)
    except Failed as exc:
        result |= exc.found
        result["reason"] = str(exc)
        result["failed"] = exc.check
    except (MemoryError, OutOfMemory):
        result["reason"] = "out of memory"
        result["limit"] = "memory"
    except RecursionError:
        result["reason"] = "not a state dict: nested too deeply for torch's loader"
    result["cpu_seconds"] = round(time.process_time() - started, 2)
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def main(argv: list[str]) -> int:
    path, fmt, memory, cpu = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    result = run(path, fmt, memory, cpu)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip tearing down what the file built (a deep structure, a huge mapping)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
