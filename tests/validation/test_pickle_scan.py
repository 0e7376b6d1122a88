"""The torch-free scan agrees with the torch-based check (``check_checkpoint``: torch's
weights_only loader, then isfinite) on real torch-made files, runs nothing in them, and keeps the
push's check far below torch's memory footprint."""

from __future__ import annotations

import collections
import datetime
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from agent.config import load_config
from agent.pickle_scan import scan_checkpoint
from agent.store import Store
from agent.validate import check_checkpoint
from agent.validate_cache import load_records, structural_problem
from tests.agent.conftest import cli_env
from tests.validation.conftest import save
from tests.validation.test_validate import _Planted

FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def verdicts(path: Path) -> tuple[str, bool]:
    """(the scan's status, the torch-based check's ok)."""
    return scan_checkpoint(path).status, check_checkpoint(path).ok


def trained_with_adam() -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters())
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 8)).pow(2).sum().backward()
        opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 2}


def test_plain_checkpoints_are_ok_like_torch_says(tmp_path):
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tied = torch.randn(5, 3)
    cases = {
        "adam": trained_with_adam(),
        "dtypes": {str(dt): torch.ones(3, dtype=dt) for dt in FLOATS}
        | {
            str(dt): torch.arange(4).to(dt)
            for dt in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)
        },
        "uint16": {"w": torch.arange(3).to(torch.uint16)},  # _rebuild_tensor_v3 + untyped
        "views": {
            "embed": tied,
            "head": tied,  # a tied weight: one storage, two names
            "row": base[1:],
            "col": base[:, 2],
            "t": base.t(),
            "param": nn.Parameter(torch.ones(2)),
        },
        "tiny": {
            "empty": torch.empty(0),
            "scalar": torch.tensor(3.5),
            "zero_rows": torch.ones(0, 4),
        },
    }
    for name, state in cases.items():
        path = save(state, tmp_path / f"{name}.pth")
        assert verdicts(path) == ("ok", True), name


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_planted_non_finite_value_is_bad_in_every_float_dtype(tmp_path, dtype, value):
    state = {"ok": torch.ones(4, dtype=dtype), "w": torch.zeros(1000, dtype=dtype)}
    state["w"][537] = value
    path = save(state, tmp_path / "m.pth")
    result = scan_checkpoint(path)
    assert (result.status, check_checkpoint(path).ok) == ("bad", False)
    assert result.problems == ["NaN or infinite values in w"]
    # the largest finite values set every exponent bit but one: still fine
    state["w"][537] = torch.finfo(dtype).max
    state["w"][538] = torch.finfo(dtype).min
    assert verdicts(save(state, path)) == ("ok", True)


def test_nested_nan_is_named_by_its_dotted_path(tmp_path):
    state = trained_with_adam()
    state["optimizer"]["state"][0]["exp_avg"][0, 0] = float("nan")
    result = scan_checkpoint(save(state, tmp_path / "m.pth"))
    assert result.status == "bad"
    assert result.problems == ["NaN or infinite values in optimizer.state.0.exp_avg"]


def test_a_nan_outside_a_saved_view_still_counts(tmp_path):
    """Stricter than torch's check, which reads only the view: the NaN is in the file."""
    base = torch.zeros(10)
    base[0] = float("nan")
    path = save({"tail": base[5:]}, tmp_path / "m.pth")
    assert verdicts(path) == ("bad", True)


def test_malicious_pickles_are_bad_and_nothing_runs(tmp_path):
    class System:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {tmp_path / 'by_system'}",))

    planted = tmp_path / "by_open"
    for payload, wants in ((System(), "posix.system"), (_Planted(str(planted)), "io.open")):
        path = save({"w": torch.ones(2), "x": payload}, tmp_path / "evil.pth")
        result = scan_checkpoint(path)
        assert (result.status, check_checkpoint(path).ok) == ("bad", False)
        assert f"it asks for {wants}" in result.problems[0]
        assert "nothing was executed" in result.problems[0]
    assert not planted.exists() and not (tmp_path / "by_system").exists()


def test_globals_torch_would_refuse_are_bad_and_the_unfamiliar_ones_unknown(tmp_path):
    w = torch.ones(2)
    refused = save({"w": w, "when": datetime.date(2024, 1, 1)}, tmp_path / "date.pth")
    assert verdicts(refused) == ("bad", False)
    # torch accepts these, the scan does not model them: torch decides
    for name, extra in {
        "counter": collections.Counter(a=1),
        "size": torch.Size([2]),
        "float8": torch.zeros(2, dtype=torch.float8_e4m3fn),
        "complex": torch.zeros(2, dtype=torch.complex64),
    }.items():
        path = save({"w": w, "x": extra}, tmp_path / f"{name}.pth")
        assert verdicts(path) == ("unknown", True), name


def rewritten(src: Path, dst: Path, suffix: str, data: bytes) -> Path:
    """A copy of the torch zip ``src`` whose member ending in ``suffix`` holds ``data``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, data if info.filename.endswith(suffix) else zin.read(info))
    return dst


def test_damaged_and_other_formats_are_left_to_torch(tmp_path):
    good = save(trained_with_adam(), tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert verdicts(truncated) == ("unknown", False)
    with zipfile.ZipFile(good) as zf:
        (member,) = [n for n in zf.namelist() if n.endswith("/data/0")]
        data = zf.read(member)
    short = rewritten(good, tmp_path / "short.pth", "/data/0", data[:-4])
    # a member shorter than its storage: torch's mmap'ed load does not notice (the storage runs
    # on into the next member), the scan does not guess, and the torch check compares sizes
    assert verdicts(short) == ("unknown", False)
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert verdicts(legacy) == ("unknown", True)
    no_tensors = save({"lr": 0.1}, tmp_path / "none.pth")
    assert verdicts(no_tensors) == ("unknown", False)
    # protocol 4 (FRAME, STACK_GLOBAL): torch's weights_only unpickler refuses its opcodes, and
    # the scan (whose own unpickler could read them) does not call it ok
    proto4 = tmp_path / "proto4.pth"
    torch.save({"w": torch.ones(2)}, proto4, pickle_protocol=4)
    assert verdicts(proto4) == ("unknown", False)


# data.pkl for one float32 tensor of 2 values in storage "0", written op by op (protocol 2)
TENSOR_PKL = (
    b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
    b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQ"
    b"K\x00K\x02\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR"
)


def test_state_set_on_a_tensor_or_a_python2_name_is_left_to_torch(tmp_path):
    good = save({"w": torch.ones(2)}, tmp_path / "good.pth")
    plain = rewritten(good, tmp_path / "plain.pth", "/data.pkl", TENSOR_PKL + b".")
    assert verdicts(plain) == ("ok", True)  # the hand-written pickle is what torch writes
    # BUILD on the tensor: torch would call set_ on it; a stub must not take the state
    built = rewritten(good, tmp_path / "built.pth", "/data.pkl", TENSOR_PKL + b"}b.")
    assert scan_checkpoint(built).status == "unknown"
    # torch renames __builtin__ to builtins, and allows builtins.set
    py2 = TENSOR_PKL.replace(b"collections\nOrderedDict", b"__builtin__\nset")
    assert (
        scan_checkpoint(rewritten(good, tmp_path / "py2.pth", "/data.pkl", py2 + b".")).status
        == "unknown"
    )


def safetensors_file(path: Path, values: list[float]) -> Path:
    data = struct.pack(f"<{len(values)}f", *values)
    header = {"w": {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, len(data)]}}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_are_scanned_too(tmp_path):
    assert verdicts(safetensors_file(tmp_path / "a.safetensors", [1.0, 2.0])) == ("ok", True)
    nan = safetensors_file(tmp_path / "b.safetensors", [1.0, float("nan")])
    assert verdicts(nan) == ("bad", False)
    lying = tmp_path / "c.safetensors"
    lying.write_bytes(safetensors_file(lying, [1.0] * 4).read_bytes()[:-4])
    assert verdicts(lying) == ("unknown", False)


def test_the_push_check_decides_without_torch_when_the_scan_can(project, tmp_path, monkeypatch):
    import agent.validate

    store = Store(load_config(project.config))
    children: list[Path] = []
    torch_child = agent.validate.check_in_child

    def counted(path: Path, **kw: float | None) -> tuple[bool, list[str]]:
        children.append(path)
        return torch_child(path, **kw)

    monkeypatch.setattr(agent.validate, "check_in_child", counted)
    assert structural_problem(store, project.model(), "a" * 64) is None
    assert load_records(store.state_dir)["a" * 64] == {"structural_ok": True}
    poisoned = save({"w": torch.tensor([1.0, float("inf")])}, tmp_path / "inf.pth")
    assert structural_problem(store, poisoned, "b" * 64) == (
        "failed the structural check: NaN or infinite values in w"
    )
    assert "b" * 64 not in load_records(store.state_dir)
    assert children == []
    # a file the scan does not understand goes to the torch child, which decides
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.tensor([float("nan")])}, legacy, _use_new_zipfile_serialization=False)
    assert structural_problem(store, legacy, "c" * 64) == (
        "failed the structural check: NaN or infinite values in w"
    )
    assert children == [legacy]


WRAPPER = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
SCAN = (
    "import sys; from agent.pickle_scan import scan_checkpoint; print(scan_checkpoint(sys.argv[1]))"
)


def child_peak_kb(*args: str) -> int:
    """Peak RSS of ``python ARGS`` alone: measured by a fresh wrapper, because RUSAGE_CHILDREN of
    this process also holds every earlier child's peak."""
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, sys.executable, *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
        check=True,
    )
    return int(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_scanning_300mb_stays_under_100mb_while_the_torch_child_does_not(tmp_path):
    path = tmp_path / "big.pth"
    state = {f"layer{i}.weight": torch.zeros(25 * 1024 * 768) for i in range(4)}  # 4 x 75 MB
    torch.save(state, path)
    del state
    assert path.stat().st_size > 300_000_000
    assert scan_checkpoint(path).status == "ok"
    scan_kb = child_peak_kb("-c", SCAN, str(path))
    torch_kb = child_peak_kb("-m", "agent.validate", str(path))
    print(f"peak RSS: scan {scan_kb // 1024} MB, torch child {torch_kb // 1024} MB")
    assert scan_kb < 100 * 1024 < 200 * 1024 < torch_kb, (scan_kb, torch_kb)
