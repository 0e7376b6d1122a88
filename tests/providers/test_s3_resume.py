"""S3 downloads kept for resume never mix with a newer version of the object. (Resume after kill
-9 of a real process is in the conformance suite, for every backend that resumes.)"""

from __future__ import annotations

import os
import random

import pytest

from providers import open_provider
from providers.errors import TransientError
from tests.servers.seaweed import PART

SIZE = 64 * 1024 * 1024 + 12345


def test_download_kept_for_resume_is_discarded_when_the_object_changed(
    seaweedfs, fault_proxy, tmp_path
):
    """A temp file kept by a failed attempt never mixes with a newer version of the object."""
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url, retry={"attempts": 1})
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    src = tmp_path / "s"
    src.write_bytes(random.Random(1).randbytes(3 * PART + 5))
    remote.put("d.pth", src)
    out = tmp_path / "out"
    fault_proxy.add("cut", method="GET", limit=1)
    with pytest.raises(TransientError):
        remote.get("d.pth", out / "d.pth")
    (kept,) = out.glob(".d.pth.*.incomplete")
    assert list((tmp_path / "state" / "downloads").glob("*.jsonl"))

    newer = random.Random(2).randbytes(3 * PART + 5)  # same size, other bytes: a new ETag
    src.write_bytes(newer)
    remote.put("d.pth", src)
    remote.get("d.pth", out / "d.pth")
    assert (out / "d.pth").read_bytes() == newer
    assert not kept.exists()
    assert os.listdir(out) == ["d.pth"]
    assert list((tmp_path / "state" / "downloads").iterdir()) == []
