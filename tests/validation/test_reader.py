"""The streaming reader returns exactly what torch.load returns, chunk by chunk, for the layouts
torch.save produces: shared storages and views, legacy files, empty and non-float tensors."""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.checkpoint.reader import CheckpointError, open_checkpoint
from agent.checks.runner import check_file


def _read_all(info, chunk_bytes: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    parts = [c.clone() for c in info.value_chunks(chunk_bytes)]  # a chunk's buffer is reused
    flat = torch.cat(parts) if parts else torch.empty(0, dtype=info.torch_dtype)
    return flat.reshape(info.shape)


@pytest.mark.parametrize("legacy", [False, True])
def test_values_match_torch_load(tmp_path, legacy):
    base = torch.randn(6, 5)
    state = {
        "base": base,
        "row": base[2],  # a view sharing base's storage
        "col": base[:, 1],  # a strided view
        "half": torch.randn(7).to(torch.bfloat16),
        "ids": torch.arange(11, dtype=torch.int32),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.empty(0, 3),
        "scalar": torch.tensor(2.5),
    }
    path = tmp_path / "ck.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    expected = torch.load(path, weights_only=True)
    with open_checkpoint(path) as ck:
        assert ck.format == ("torch-legacy" if legacy else "torch-zip")
        got = {t.name: t for t in ck.tensors}
        assert set(got) == set(expected)
        for name, value in expected.items():
            assert got[name].dtype == str(value.dtype).removeprefix("torch.")
            assert got[name].shape == tuple(value.shape)
            for chunk in (4, 12, 1 << 20):  # chunk sizes smaller than one row, and larger
                assert torch.equal(_read_all(got[name], chunk), value), (name, chunk)


def test_nan_outside_a_view_is_blamed_on_the_right_tensor(tmp_path):
    base = torch.ones(4, 4)
    base[0, 0] = float("nan")
    path = tmp_path / "ck.pth"
    torch.save({"base": base, "row": base[3]}, path)
    assert check_file(path).reason == "NaN or infinite values in base"


def test_safetensors_values_and_truncation(tmp_path):
    values = torch.arange(6, dtype=torch.float32)
    header = b'{"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}'
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(values.untyped_storage()))
    with open_checkpoint(path) as ck:
        (info,) = ck.tensors
        assert torch.equal(_read_all(info, 8), values.reshape(2, 3))
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(CheckpointError, match="outside the file"):
        open_checkpoint(path)
    path.write_bytes(struct.pack("<Q", 1 << 40) + header)
    with pytest.raises(CheckpointError, match="limit 100 MB"):
        open_checkpoint(path)
    nested = b"[" * 200_000
    path.write_bytes(struct.pack("<Q", len(nested)) + nested)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        open_checkpoint(path)


_entry = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F16", "I64", "U8", "BOOL", "X9", 3]),
        "shape": st.one_of(st.lists(st.integers(-2, 6), max_size=3), st.text(max_size=2)),
        "data_offsets": st.one_of(st.lists(st.integers(-4, 80), min_size=0, max_size=3), st.none()),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    header=st.dictionaries(st.text(min_size=1, max_size=3), _entry, max_size=4),
    data_len=st.integers(0, 64),
)
def test_any_safetensors_header_is_either_refused_or_readable(tmp_path_factory, header, data_len):
    """Untrusted header: every claim is checked, so a header either raises CheckpointError or
    describes tensors that can all be read from the file as stated."""
    path = tmp_path_factory.mktemp("st") / "h.safetensors"
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(range(data_len)))
    try:
        ck = open_checkpoint(path)
    except CheckpointError:
        return
    with ck:
        for info in ck.tensors:
            assert _read_all(info, 5).numel() == math.prod(info.shape)
