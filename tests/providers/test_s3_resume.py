"""Resume across process death, with real processes: a worker uploads (downloads) a ~64 MB file
to (from) SeaweedFS, is killed with SIGKILL halfway, and a second run moves only what is missing."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from providers import open_provider
from providers.errors import TransientError
from tests.providers.workers import kill_when_paused, run_to_done, start_worker
from tests.servers.seaweed import PART

SIZE = 64 * 1024 * 1024 + 12345


@pytest.mark.slow
def test_upload_killed_with_sigkill_resumes_and_sends_only_missing_parts(seaweedfs, tmp_path):
    settings = seaweedfs.settings()
    src = tmp_path / "model.pth"
    data = random.Random(7).randbytes(SIZE)
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    state = tmp_path / "state"

    paused = kill_when_paused(start_worker(settings, "m/model.pth", src, state, 3 * PART))
    assert paused >= 3 * PART
    assert list((state / "uploads").glob("*.jsonl")), "the killed run left its journal"

    sent, stored_sha = run_to_done(start_worker(settings, "m/model.pth", src, state))
    assert sent <= SIZE - 3 * PART  # the parts finished before the kill were not resent
    assert stored_sha == sha
    assert list((state / "uploads").glob("*.jsonl")) == []

    remote = open_provider("check", settings, state_dir=tmp_path / "other")
    back = tmp_path / "back.pth"
    info = remote.get("m/model.pth", back, expected_hashes={"sha256": sha})
    assert info.size == SIZE
    assert back.read_bytes() == data


@pytest.mark.slow
def test_download_killed_with_sigkill_resumes_and_fetches_only_missing_ranges(
    seaweedfs, fault_proxy, tmp_path
):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    data = random.Random(11).randbytes(SIZE)
    src = tmp_path / "model.pth"
    src.write_bytes(data)
    open_provider("up", settings, state_dir=tmp_path / "up").put("m/model.pth", src)
    dest = tmp_path / "restore" / "model.pth"
    state = tmp_path / "state"

    fault_proxy.clear()
    first = start_worker(settings, "m/model.pth", dest, state, SIZE // 2, mode=("get",))
    paused = kill_when_paused(first)
    assert paused >= SIZE // 2
    assert not dest.exists()
    assert list((state / "downloads").glob("*.jsonl")), "the killed run left its journal"
    assert [p.name for p in dest.parent.glob(".model.pth.*.incomplete")], "and its temp file"

    fault_proxy.clear()
    received, sha = run_to_done(start_worker(settings, "m/model.pth", dest, state, mode=("get",)))
    # The ranges finished before the kill were not fetched again; at most the ranges in flight
    # at the kill (one per connection) are.
    in_flight = settings["max_request_concurrency"] * PART
    assert fault_proxy.response_bytes < SIZE
    assert fault_proxy.response_bytes <= SIZE - SIZE // 2 + in_flight
    assert received < SIZE
    assert sha == hashlib.sha256(data).hexdigest()
    assert dest.read_bytes() == data
    assert os.listdir(dest.parent) == ["model.pth"]  # no temp file left
    assert list((state / "downloads").iterdir()) == []  # and no journal


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
