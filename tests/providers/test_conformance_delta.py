"""The delta put contract (``Capabilities.put_reusing``), for every backend that declares it, on
a real server, through ``open_provider`` (so through the retry layer). Part of the conformance
suite (same ``remote`` and ``backend`` fixtures), in its own module to keep modules small.

1 MiB ranges keep the files small (the contract allows any range size). A backend copying whole
parts only copies a part whose every range is reusable, so the changes below leave whole parts
untouched."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from providers import open_provider
from providers.base import Reuse
from providers.errors import IntegrityError, NotFound, PreconditionFailed
from providers.ranges import ranges_of_file
from tests.providers.helpers import MIB, make_file
from tests.providers.test_conformance import part_size
from tests.providers.workers import kill_when_paused, run_to_done, start_worker, wait_for

RANGE = MIB


def delta_put(remote) -> Any:
    op = remote.capabilities.put_reusing
    if op is None:
        pytest.skip("this backend has no delta put")
    return op


def two_versions(tmp_path: Path, size: int, changed: set[int]) -> tuple[Path, Path]:
    """An old file and a new one of ``size`` bytes that differ only in the ranges ``changed``."""
    old, new = tmp_path / "old.pth", tmp_path / "new.pth"
    make_file(old, size, seed=3)
    data = bytearray(old.read_bytes())
    for i in changed:
        start = i * RANGE
        end = min(size, start + RANGE)
        data[start:end] = random.Random(100 + i).randbytes(end - start)
    new.write_bytes(bytes(data))
    return old, new


def reuse_of(remote, source_key: str, new: Path, old: Path, **changes: Any) -> Reuse:
    """The Reuse a caller computes: the ranges both files share, the source as stat saw it."""
    same = ranges_of_file(new, RANGE).same_as(ranges_of_file(old, RANGE))
    reuse = Reuse(source_key, dict(remote.stat(source_key).identity), RANGE, frozenset(same))
    return dataclasses.replace(reuse, **changes)


@pytest.mark.parametrize("key", ["v/new.pth", "v/old.pth"], ids=["new-key", "same-key"])
def test_put_reusing_copies_the_shared_ranges_and_sends_the_rest(
    remote, remote_settings, tmp_path, key
):
    put_reusing = delta_put(remote)
    size = 4 * part_size(remote_settings) + 12345
    last = size // RANGE
    old, new = two_versions(tmp_path, size, {1, last})
    sha = hashlib.sha256(new.read_bytes()).hexdigest()
    remote.put("v/old.pth", old)
    reuse = reuse_of(remote, "v/old.pth", new, old)
    assert 1 not in reuse.ranges and last not in reuse.ranges

    sent: list[int] = []
    info, copied = put_reusing(
        key, new, reuse, expected_hashes={"sha256": sha}, progress=sent.append
    )
    assert info.size == size
    assert info.hashes.get("sha256", sha) == sha
    assert copied > 0
    assert sum(sent) < size
    assert sum(sent) + copied == size  # every byte either sent or copied, once
    back = tmp_path / "back.pth"
    remote.get(key, back, expected_hashes={"sha256": sha})
    assert back.read_bytes() == new.read_bytes()
    if key != "v/old.pth":  # the source is untouched
        remote.get("v/old.pth", tmp_path / "old-back.pth")
        assert (tmp_path / "old-back.pth").read_bytes() == old.read_bytes()
    assert sorted(o.key for o in remote.list()) == sorted({"v/old.pth", key})


@pytest.mark.parametrize("how", ["replaced", "deleted"])
def test_put_reusing_from_a_source_changed_since_is_refused(remote, tmp_path, how):
    put_reusing = delta_put(remote)
    old, new = two_versions(tmp_path, 6 * MIB + 99, {2})
    remote.put("v/old.pth", old)
    reuse = reuse_of(remote, "v/old.pth", new, old)
    if how == "replaced":
        time.sleep(0.05)  # file systems stamp mtimes from a clock that ticks every few ms
        other = tmp_path / "other.pth"
        make_file(other, old.stat().st_size, seed=9)  # same size, other bytes
        remote.put("v/old.pth", other)
    else:
        remote.delete("v/old.pth")
    with pytest.raises(PreconditionFailed):
        put_reusing("v/new.pth", new, reuse)
    with pytest.raises(NotFound):
        remote.stat("v/new.pth")
    assert [o.key for o in remote.list()] == (["v/old.pth"] if how == "replaced" else [])
    # The caller's fallback, a whole put, works at once.
    remote.put("v/new.pth", new)
    remote.get("v/new.pth", tmp_path / "back.pth")
    assert (tmp_path / "back.pth").read_bytes() == new.read_bytes()


def test_put_reusing_with_a_lying_reuse_leaves_nothing(remote, remote_settings, tmp_path):
    put_reusing = delta_put(remote)
    size = 3 * part_size(remote_settings) + 777
    old, new = two_versions(tmp_path, size, {1})
    remote.put("v/old.pth", old)
    # Every range claimed equal, the changed one too: the copy would assemble the old bytes.
    everything = frozenset(range(size // RANGE + 1))
    reuse = reuse_of(remote, "v/old.pth", new, old, ranges=everything)
    with pytest.raises(IntegrityError):
        put_reusing("v/new.pth", new, reuse)
    with pytest.raises(NotFound):
        remote.stat("v/new.pth")
    assert [o.key for o in remote.list()] == ["v/old.pth"]


@pytest.mark.slow
def test_put_reusing_killed_with_sigkill_resumes_without_redoing_finished_ranges(backend, tmp_path):
    settings = {**backend.settings, **backend.big_transfer}
    probe = open_provider("probe", settings, state_dir=tmp_path / "probe")
    probe.close()
    if probe.capabilities.put_reusing is None:
        pytest.skip("this backend has no delta put")
    part = part_size(settings)
    size = 8 * part + 4321
    # The first range of every other part changes, and the tail: half the parts stay whole.
    changed = {p * part // RANGE for p in (0, 2, 4, 6)} | {size // RANGE}
    old, new = two_versions(tmp_path, size, changed)
    sha = hashlib.sha256(new.read_bytes()).hexdigest()
    up = open_provider("up", settings, state_dir=tmp_path / "up")
    up.put("m/old.pth", old)
    reuse = reuse_of(up, "m/old.pth", new, old)
    doc = json.dumps({**dataclasses.asdict(reuse), "ranges": sorted(reuse.ranges)})
    state = tmp_path / "state"

    mode = ("delta", doc)
    first = start_worker(settings, "m/new.pth", new, state, 2 * RANGE, mode=mode)
    paused = kill_when_paused(first)
    assert paused >= 2 * RANGE
    with pytest.raises(NotFound):
        up.stat("m/new.pth")

    second = start_worker(settings, "m/new.pth", new, state, mode=mode)
    copied = int(wait_for(second, "copied").split()[1])
    sent, stored_sha = run_to_done(second)
    # What the killed run had sent is neither sent nor copied again.
    assert sent + copied <= size - paused
    assert stored_sha == sha
    assert [p for p in state.rglob("*") if p.is_file()] == []  # no journal left
    assert sorted(o.key for o in up.list()) == ["m/new.pth", "m/old.pth"]
    back = tmp_path / "back.pth"
    up.get("m/new.pth", back, expected_hashes={"sha256": sha})
    assert back.read_bytes() == new.read_bytes()
