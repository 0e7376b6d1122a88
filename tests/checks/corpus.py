"""The hostile-checkpoint corpus: ``python -m tests.checks.corpus DIR`` writes every case into DIR
and prints the table of cases. Each case carries its category, the verdict it must get, and a
fragment the refusal's reason must contain.

Cases are made with torch.save where torch can make them, and by editing the archive or writing
the pickle by hand where it cannot (a byte order record, duplicate members, code-running
globals). Nothing here loads a case.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Case:
    name: str  # the file name
    category: str
    expect: str  # "pass" | "fail"
    reason: str = ""  # a fragment of the refusal's reason
    # torch.load(weights_only=True) + finite values say the same; False where the checker is
    # stricter on purpose (a form torch.save never writes, a checkpoint with no values)
    torch_agrees: bool = True


CASES: list[tuple[Case, Callable[[Path], None]]] = []


def case(name: str, category: str, expect: str, reason: str = "", *, torch_agrees: bool = True):  # type: ignore[no-untyped-def]
    def register(make: Callable[[Path], None]) -> Callable[[Path], None]:
        CASES.append((Case(name, category, expect, reason, torch_agrees), make))
        return make

    return register


def _save(obj: object, path: Path, **kw: object) -> None:
    torch.save(obj, path, **kw)


def _members(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _write_zip(
    path: Path, members: list[tuple[str, bytes]], *, deflate: set[str] = frozenset()
) -> None:  # type: ignore[assignment]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            zf.writestr(info, data)
    path.write_bytes(buf.getvalue())


def _edited(
    path: Path,
    obj: object,
    edit: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]],
    **kw: object,
) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    members = edit(_members(tmp))
    tmp.unlink()
    _write_zip(path, members)


def _top(members: list[tuple[str, bytes]]) -> str:
    return members[0][0].split("/")[0]


def _archive_pickle(path: Path, pickled: bytes, data: dict[str, bytes] | None = None) -> None:
    """A torch-style archive whose data.pkl is ``pickled`` (written by hand)."""
    members = [("archive/data.pkl", pickled), ("archive/byteorder", b"little")]
    members += [(f"archive/data/{k}", v) for k, v in (data or {}).items()]
    members.append(("archive/version", b"3\n"))
    _write_zip(path, members)


def _swapped(members: list[tuple[str, bytes]], itemsize: int) -> list[tuple[str, bytes]]:
    out = []
    for name, data in members:
        if name.endswith("/byteorder"):
            data = b"big"
        elif "/data/" in name:
            data = b"".join(data[i : i + itemsize][::-1] for i in range(0, len(data), itemsize))
        out.append((name, data))
    return out


def _rebuild(
    storage_key: str,
    dtype_storage: str,
    numel: int,
    size: tuple,
    stride: tuple,
    requires_grad: bool = False,
) -> bytes:  # type: ignore[type-arg]
    """data.pkl for {"w": _rebuild_tensor_v2(storage, 0, size, stride, requires_grad, {})}."""
    p = b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02("
    p += b"(X\x07\x00\x00\x00storageq\x03ctorch\n" + dtype_storage.encode() + b"\nq\x04"
    p += b"X" + struct.pack("<I", len(storage_key)) + storage_key.encode()
    p += b"X\x03\x00\x00\x00cpuq\x05" + _int(numel) + b"tq\x06Q"
    p += _int(0) + _tuple(size) + _tuple(stride) + (b"\x88" if requires_grad else b"\x89")
    p += b"ccollections\nOrderedDict\nq\x07)Rq\x08tq\tRq\ns."
    return p


def _int(n: int) -> bytes:
    if 0 <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


class _System:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo corpus-payload-ran > /dev/null",))


# -- good ------------------------------------------------------------------------------------
@case("good_fp32.pth", "good", "pass")
def _(p: Path) -> None:
    _save({"fc.weight": torch.randn(32, 16), "fc.bias": torch.zeros(32)}, p)


@case("good_nested_optimizer.pth", "good", "pass")
def _(p: Path) -> None:
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 8)).sum().backward()
    opt.step()
    _save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, p)


@case("good_legacy_format.pth", "good", "pass")
def _(p: Path) -> None:
    _save({"w": torch.randn(8)}, p, _use_new_zipfile_serialization=False)


@case("good_bf16_fp16_int.pth", "dtypes", "pass")
def _(p: Path) -> None:
    _save({"a": torch.randn(8).bfloat16(), "b": torch.randn(8).half(), "i": torch.arange(5)}, p)


@case("good.safetensors", "good", "pass")
def _(p: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.randn(16, 4), "b": torch.zeros(4)}, str(p))


@case("view_nan_outside_view.pth", "views", "pass")
def _(p: Path) -> None:
    base = torch.randn(10)
    base[7] = float("nan")  # in the storage, outside the saved view
    _save({"w": base[:5]}, p)


@case("view_broadcast_finite.pth", "views", "pass")
def _(p: Path) -> None:
    _save({"w": torch.ones(1).expand(1000, 1000)}, p)


@case("view_broadcast_nan.pth", "views", "fail", "NaN or infinite values in w")
def _(p: Path) -> None:
    _save({"w": torch.tensor([float("nan")]).expand(1000, 1000)}, p)


@case("view_transposed_nan.pth", "views", "fail", "NaN or infinite values in w")
def _(p: Path) -> None:
    t = torch.randn(64, 32)
    t[63, 31] = float("inf")
    _save({"w": t.t()}, p)


@case("shared_tuple_2pow60.pth", "bombs", "pass")
def _(p: Path) -> None:
    t: object = torch.ones(2)
    for _ in range(60):
        t = (t, t)
    _save({"w": t}, p)


@case("nested_200k_tuples.pth", "bombs", "fail", "nested more than")
def _(p: Path) -> None:
    t: object = torch.ones(2)
    for _ in range(200_000):
        t = (t,)
    sys.setrecursionlimit(1_000_000)
    try:
        data = io.BytesIO()
        # pickle itself recurses; a thread with a large stack writes it
        import threading

        threading.stack_size(512 * 1024 * 1024)
        th = threading.Thread(target=lambda: _save({"w": t}, data))
        th.start()
        th.join()
        threading.stack_size(0)
        p.write_bytes(data.getvalue())
    finally:
        sys.setrecursionlimit(1000)


# -- values ----------------------------------------------------------------------------------
@case("nan_fp32.pth", "values", "fail", "NaN or infinite values in w")
def _(p: Path) -> None:
    t = torch.randn(100)
    t[50] = float("nan")
    _save({"w": t}, p)


@case("inf_fp16.pth", "values", "fail", "NaN or infinite values in w")
def _(p: Path) -> None:
    t = torch.randn(100).half()
    t[3] = float("inf")
    _save({"w": t}, p)


@case("nan_in_optimizer_state.pth", "values", "fail", "optimizer.exp_avg")
def _(p: Path) -> None:
    t = torch.randn(4)
    t[0] = float("nan")
    _save({"model": {"w": torch.randn(4)}, "optimizer": {"exp_avg": t}}, p)


@case("nan_complex64.pth", "values", "fail", "NaN or infinite values in c")
def _(p: Path) -> None:
    _save({"c": torch.tensor([1 + 1j, complex(float("nan"), 0)], dtype=torch.complex64)}, p)


@case("nan_float8.pth", "dtypes", "fail", "NaN or infinite values in f8")
def _(p: Path) -> None:
    _save({"f8": torch.tensor([1.0, float("nan")]).to(torch.float8_e4m3fn)}, p)


@case("good_float8.pth", "dtypes", "pass")
def _(p: Path) -> None:
    _save({"f8": torch.randn(16).to(torch.float8_e5m2)}, p)


@case("float4_packed.pth", "dtypes", "pass")
def _(p: Path) -> None:
    _save({"f4": torch.zeros(8, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)}, p)


@case("nan.safetensors", "values", "fail", "NaN or infinite values in w")
def _(p: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.tensor([1.0, float("nan")])}, str(p))


@case("sparse_coo_good.pth", "layouts", "pass")
def _(p: Path) -> None:
    _save({"s": torch.eye(4).to_sparse()}, p)


@case("sparse_coo_nan.pth", "layouts", "fail", "NaN or infinite values in s")
def _(p: Path) -> None:
    dense = torch.eye(4)
    dense[1, 1] = float("nan")
    _save({"s": dense.to_sparse()}, p)


@case("sparse_csr_good.pth", "layouts", "pass")
def _(p: Path) -> None:
    _save({"s": torch.eye(4).to_sparse_csr()}, p)


@case("meta_tensor.pth", "layouts", "fail", "meta device", torch_agrees=False)
def _(p: Path) -> None:
    _save({"w": torch.empty(4, 4, device="meta")}, p)


@case("quantized_qint8.pth", "dtypes", "pass")
def _(p: Path) -> None:
    _save({"q": torch.quantize_per_tensor(torch.randn(8), 0.1, 0, torch.qint8)}, p)


@case("no_tensors.pth", "not a model", "fail", "no tensors", torch_agrees=False)
def _(p: Path) -> None:
    _save({"epoch": 3, "lr": 0.1}, p)


# -- byte order ------------------------------------------------------------------------------
@case("big_endian_finite.pth", "byte order", "pass")
def _(p: Path) -> None:
    _edited(p, {"w": torch.arange(1.0, 9.0)}, lambda m: _swapped(m, 4))


@case("big_endian_nan.pth", "byte order", "fail", "NaN or infinite values in w")
def _(p: Path) -> None:
    t = torch.arange(1.0, 9.0)
    t[4] = float("nan")
    _edited(p, {"w": t}, lambda m: _swapped(m, 4))


@case("byteorder_upper_case_nan.pth", "byte order", "fail", "")
def _(p: Path) -> None:
    t = torch.arange(1.0, 9.0)
    t[4] = float("nan")

    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        members = _swapped(members, 4)
        return [(n.replace("/byteorder", "/BYTEORDER"), d) for n, d in members]

    _edited(p, {"w": t}, edit)


# -- archive form ----------------------------------------------------------------------------
@case("deflated_records_nan.pth", "archive form", "fail", "is compressed")
def _(p: Path) -> None:
    t = torch.zeros(1000)
    t[999] = float("nan")
    tmp = p.with_suffix(".tmp")
    torch.save({"w": t}, tmp)
    members = _members(tmp)
    tmp.unlink()
    _write_zip(p, members, deflate=frozenset(n for n, _ in members if "/data/" in n))


@case("zip_bomb.pth", "bombs", "fail", "is compressed")
def _(p: Path) -> None:
    members = [("archive/data.pkl", pickle.dumps({}, protocol=2))]
    members.append(("archive/data/0", b"\0" * (200 * 1024 * 1024)))
    _write_zip(p, members, deflate=frozenset({"archive/data/0"}))


@case("duplicate_case_members.pth", "archive form", "fail", "differ only by case")
def _(p: Path) -> None:
    _edited(p, {"w": torch.ones(2)}, lambda m: [*m, (f"{_top(m)}/DATA.PKL", pickle.dumps({}))])


# torch loads this one (its reader ignores the extra member); torch.save never writes it, and
# zipfile reads it differently, so the gate refuses it: a refusal torch would not make
@case("nul_in_member_name.pth", "archive form", "fail", "NUL", torch_agrees=False)
def _(p: Path) -> None:
    # zipfile cuts a name at its NUL: write a same-length stand-in, then put the NUL in
    _edited(p, {"w": torch.ones(2)}, lambda m: [*m, (f"{_top(m)}/data.pklZx", pickle.dumps({}))])
    p.write_bytes(p.read_bytes().replace(b"/data.pklZx", b"/data.pkl\0x"))


@case("junk_before_zip.pth", "archive form", "fail", "bytes before the zip")
def _(p: Path) -> None:
    tmp = p.with_suffix(".tmp")
    torch.save({"w": torch.ones(2)}, tmp)
    p.write_bytes(b"JUNK" * 64 + tmp.read_bytes())
    tmp.unlink()


@case("torchscript_constants.pth", "archive form", "fail", "TorchScript")
def _(p: Path) -> None:
    _edited(p, {"w": torch.ones(2)}, lambda m: [*m, (f"{_top(m)}/constants.pkl", pickle.dumps(()))])


@case("no_data_pkl.pth", "not a model", "fail", "without data.pkl")
def _(p: Path) -> None:
    _write_zip(p, [("archive/version", b"3\n")])


# torch's mmap load slices the file by the sizes data.pkl claims without checking them against
# the records: it loads, lending each tensor bytes of the other record
@case(
    "record_sizes_swapped.pth",
    "archive form",
    "fail",
    "do not match the archive's data records",
    torch_agrees=False,
)
def _(p: Path) -> None:
    def edit(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        data = {n: d for n, d in members if "/data/" in n and not n.endswith("serialization_id")}
        a, b = sorted(data)
        return [(b if n == a else a if n == b else n, d) for n, d in members]

    _edited(p, {"a": torch.ones(4), "b": torch.ones(8)}, edit)


@case("truncated.pth", "not a model", "fail", "truncated")
def _(p: Path) -> None:
    tmp = p.with_suffix(".tmp")
    torch.save({"w": torch.randn(1000)}, tmp)
    data = tmp.read_bytes()
    tmp.unlink()
    p.write_bytes(data[: len(data) // 2])


@case("safetensors_gap.safetensors", "archive form", "fail", "safetensors library refuses it")
def _(p: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}).encode()
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)


@case("safetensors_100k_empty_tensors.safetensors", "bombs", "pass")
def _(p: Path) -> None:
    # a 6 MB header the library accepts: judged in the child, within its limits
    entries = {
        f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(100_000)
    }
    header = json.dumps(entries).encode()
    p.write_bytes(struct.pack("<Q", len(header)) + header)


@case("safetensors_header_past_end.safetensors", "archive form", "fail", "longer than the file")
def _(p: Path) -> None:
    p.write_bytes(struct.pack("<Q", 10_000) + b"{}")


# -- pickles ---------------------------------------------------------------------------------
@case("code_os_system.pth", "code", "fail", "could run code: it calls os.system")
def _(p: Path) -> None:
    _save({"w": torch.ones(2), "x": _System()}, p)


@case("code_builtins_eval.pth", "code", "fail", "could run code: it calls builtins.eval")
def _(p: Path) -> None:
    _archive_pickle(
        p, b"\x80\x02c__builtin__\neval\nX\x04\x00\x00\x001+1'\x85R.".replace(b"'", b"")
    )


@case("code_bare_pickle.pt", "code", "fail", "could run code: it calls os.system")
def _(p: Path) -> None:
    p.write_bytes(pickle.dumps(_System(), protocol=4))


@case("unknown_dtype_float128.pth", "code", "fail", "unknown dtype torch.float128")
def _(p: Path) -> None:
    _archive_pickle(p, b"\x80\x02}X\x01\x00\x00\x00wctorch\nfloat128\ns.")


@case("setitem_on_list.pth", "code", "fail", "not a plain state dict")
def _(p: Path) -> None:
    _archive_pickle(p, b"\x80\x02]K\x00K\x01s.")


@case("huge_memo_index.pth", "bombs", "fail", "no tensors")
def _(p: Path) -> None:
    _archive_pickle(p, b"\x80\x02]r\xff\xff\xff\x7f.")


@case("requires_grad_int.pth", "code", "fail", "torch cannot load it")
def _(p: Path) -> None:
    _archive_pickle(p, _rebuild("0", "LongStorage", 2, (2,), (1,), True), {"0": b"\0" * 16})


@case("stride0_overflow.pth", "bombs", "fail", "")
def _(p: Path) -> None:
    big = 2**62
    _archive_pickle(p, _rebuild("0", "FloatStorage", 1, (big, big), (0, 0)), {"0": b"\0" * 4})


@case("stride0_huge_finite.pth", "bombs", "pass", torch_agrees=False)
def _(p: Path) -> None:
    size = 2**31
    _archive_pickle(p, _rebuild("0", "FloatStorage", 1, (size, size), (0, 0)), {"0": b"\0" * 4})


@case("legacy_storage_claims_4gb.pth", "bombs", "fail", "memory limit")
def _(p: Path) -> None:
    # a legacy file whose storage claims 2**30 floats: torch allocates what the pickle claims
    tmp = p.with_suffix(".tmp")
    torch.save({"w": torch.ones(12345)}, tmp, _use_new_zipfile_serialization=False)
    data = tmp.read_bytes()
    tmp.unlink()
    claim = b"cpuq\x06M" + struct.pack("<H", 12345)  # the storage's numel in its persistent id
    assert data.count(claim) == 1
    p.write_bytes(data.replace(claim, b"cpuq\x06J" + struct.pack("<i", 2**30)))


@case("text_file.pth", "not a model", "fail", "a text file")
def _(p: Path) -> None:
    p.write_text("hello, I am the README\n")


@case("random_bytes.pth", "not a model", "fail", "not a torch checkpoint")
def _(p: Path) -> None:
    p.write_bytes(bytes(range(7, 256)) * 40)


@case("empty.pth", "not a model", "fail", "empty file")
def _(p: Path) -> None:
    p.write_bytes(b"")


def build(directory: Path) -> list[Case]:
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for c, make in CASES:
        make(directory / c.name)
        made.append(c)
    return made


def main(argv: list[str]) -> int:
    made = build(Path(argv[0]))
    for c in made:
        print(f"{c.category:13} {c.expect:4} {c.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
