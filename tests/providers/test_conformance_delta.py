"""The delta put contract (``Capabilities.put_reusing``), for every backend that declares it, on
a real server, through ``open_provider`` (so through the retry layer). Part of the conformance
suite (same ``backend`` fixture), in its own module to keep modules small.

Files are a few ranges of 5 MiB (``Reuse.range_size`` may be any size; 5 MiB keeps S3 parts at
its minimum, so the files stay small)."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict
from pathlib import Path

import pytest

from providers import open_provider
from providers.base import Reuse
from providers.errors import IntegrityError, NotFound, PreconditionFailed
from providers.ranges import ranges_of_file
from tests.providers.helpers import MIB, make_file
from tests.providers.test_conformance import tear_journals
from tests.providers.workers import kill_when_paused, run_to_done, start_worker, wait_for

RS = 5 * MIB


@pytest.fixture
def remote(remote_settings, tmp_path):
    provider = open_provider("conformance", remote_settings, state_dir=tmp_path / "state")
    if provider.capabilities.put_reusing is None:
        pytest.skip("this backend has no delta put")
    try:
        yield provider
    finally:
        provider.close()


def versions(tmp_path: Path, size: int, changed: set[int]) -> tuple[Path, Path]:
    """An old and a new file of ``size`` bytes that differ only in the ranges ``changed``."""
    data = bytearray(random.Random(3).randbytes(size))
    old, new = tmp_path / "old.pth", tmp_path / "new.pth"
    old.write_bytes(data)
    for i in changed:
        end = min(size, (i + 1) * RS)
        data[i * RS : end] = random.Random(100 + i).randbytes(end - i * RS)
    new.write_bytes(data)
    return old, new


def reuse_of(remote, source_key: str, old: Path, new: Path) -> Reuse:
    """What the agent offers: the ranges the two files share, against the stored source."""
    same = ranges_of_file(old, RS).same_as(ranges_of_file(new, RS))
    return Reuse(source_key, dict(remote.stat(source_key).identity), RS, frozenset(same))


def make_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed(remote) -> list[str]:
    return sorted(o.key for o in remote.list())


def test_delta_put_sends_only_changed_ranges_and_is_byte_identical(remote, tmp_path):
    size = 4 * RS + 1234  # five ranges, the last one short
    old, new = versions(tmp_path, size, changed={1})
    remote.put("m/v1.pth", old)
    reuse = reuse_of(remote, "m/v1.pth", old, new)
    assert reuse.ranges == {0, 2, 3, 4}
    sha = make_sha(new)
    sent: list[int] = []
    info, copied = remote.capabilities.put_reusing(
        "m/v2.pth", new, reuse, expected_hashes={"sha256": sha}, progress=sent.append
    )
    assert info.size == size
    assert info.hashes.get("sha256", sha) == sha
    assert copied > 0
    assert sum(sent) < size  # the reused ranges did not travel
    assert sum(sent) + copied >= size  # every byte either sent or copied
    back = tmp_path / "back.pth"
    remote.get("m/v2.pth", back, expected_hashes={"sha256": sha})
    assert back.read_bytes() == new.read_bytes()
    assert dict(remote.stat("m/v1.pth").identity) == dict(reuse.source_identity)  # untouched


def test_source_replaced_since_the_reuse_was_computed_is_a_precondition_failure(remote, tmp_path):
    old, new = versions(tmp_path, 4 * RS + 99, changed={0})
    remote.put("m/v1.pth", old)
    reuse = reuse_of(remote, "m/v1.pth", old, new)
    other = tmp_path / "other.pth"
    make_file(other, 4 * RS + 99, seed=42)
    remote.put("m/v1.pth", other)  # another writer replaced the source meanwhile
    with pytest.raises(PreconditionFailed):
        remote.capabilities.put_reusing("m/v2.pth", new, reuse)
    with pytest.raises(NotFound):
        remote.stat("m/v2.pth")
    assert listed(remote) == ["m/v1.pth"]


def test_a_reuse_claiming_a_range_that_differs_is_caught_and_nothing_is_visible(remote, tmp_path):
    """Never trust, verify: the assembled object is checked against the file."""
    old, new = versions(tmp_path, 4 * RS + 7, changed={2})
    remote.put("m/v1.pth", old)
    honest = reuse_of(remote, "m/v1.pth", old, new)
    lying = Reuse(honest.source_key, honest.source_identity, RS, frozenset(range(5)))
    with pytest.raises(IntegrityError):
        remote.capabilities.put_reusing("m/v2.pth", new, lying)
    with pytest.raises(NotFound):
        remote.stat("m/v2.pth")
    assert listed(remote) == ["m/v1.pth"]
    # Nothing left half-done stands in the way of an honest delta put.
    info, _ = remote.capabilities.put_reusing("m/v2.pth", new, honest)
    assert info.size == new.stat().st_size
    remote.get("m/v2.pth", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == new.read_bytes()


@pytest.mark.slow
def test_delta_put_killed_with_sigkill_resumes_without_sending_a_part_twice(backend, tmp_path):
    settings = {**backend.settings, **backend.big_transfer}
    probe = open_provider("probe", settings, state_dir=tmp_path / "probe")
    probe.close()
    if probe.capabilities.put_reusing is None or not probe.capabilities.resumable:
        pytest.skip("this backend has no resumable delta put")
    changed = {1, 3, 5, 7}
    size = 8 * RS + 12345  # nine ranges, four of them changed
    old, new = versions(tmp_path, size, changed)
    remote = open_provider("setup", settings, state_dir=tmp_path / "setup")
    remote.put("m/v1.pth", old)
    reuse = reuse_of(remote, "m/v1.pth", old, new)
    to_send = len(changed) * RS
    fields = json.dumps({**asdict(reuse), "ranges": sorted(reuse.ranges)})
    state = tmp_path / "state"
    delta = ("delta", fields)

    first = start_worker(settings, "m/v2.pth", new, state, to_send // 2, mode=delta)
    paused = kill_when_paused(first)
    assert paused >= to_send // 2
    assert tear_journals(state) >= 1, "the killed run left its journal"

    second = start_worker(settings, "m/v2.pth", new, state, mode=delta)
    copied = int(wait_for(second, "copied").split()[1])
    sent, stored_sha = run_to_done(second)
    assert sent <= to_send - paused  # what the killed run had sent was not sent again
    assert copied <= size - to_send  # only reusable ranges are ever copied
    assert stored_sha == make_sha(new)
    assert [p for p in state.rglob("*") if p.is_file()] == []  # no journal left
    back = tmp_path / "back.pth"
    remote.get("m/v2.pth", back)
    assert back.read_bytes() == new.read_bytes()
