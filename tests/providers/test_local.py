"""Local-backend specifics the conformance suite does not cover."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers import open_provider
from providers.base import Reuse
from providers.errors import IntegrityError, NotFound, PreconditionFailed
from providers.ranges import ranges_of_file
from providers.transfer import check_key
from tests.providers.helpers import MIB, make_file
from tests.providers.workers import kill_when_paused, run_to_done, start_worker, wait_for


@pytest.fixture
def remote(tmp_path):
    return open_provider("nas", {"type": "local", "path": str(tmp_path / "remote")})


def test_unmounted_parent_is_not_created(tmp_path):
    with pytest.raises(NotFound, match="mount it or fix path"):
        open_provider("nas", {"type": "local", "path": str(tmp_path / "no" / "mount")})
    assert not (tmp_path / "no").exists()


def test_copy_is_a_real_copy_not_a_hard_link(remote, tmp_path):
    src = tmp_path / "s"
    src.write_bytes(b"weights" * 1000)
    remote.put("a.pth", src)
    remote.capabilities.copy("a.pth", "b.pth")
    root = tmp_path / "remote"
    assert os.stat(root / "a.pth").st_ino != os.stat(root / "b.pth").st_ino
    assert os.stat(root / "b.pth").st_nlink == 1
    assert os.stat(src).st_nlink == 1  # put never links the models dir either


def test_bit_rot_on_the_remote_is_detected_on_get(remote, tmp_path):
    src = tmp_path / "s"
    src.write_bytes(b"A" * 5000)
    remote.put("a.pth", src)
    stored = tmp_path / "remote" / "a.pth"
    st = stored.stat()
    with open(stored, "r+b") as f:  # flip a byte, keep size and mtime: only the hash can tell
        f.seek(100)
        f.write(b"B")
    os.utime(stored, ns=(st.st_atime_ns, st.st_mtime_ns))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError):
        remote.get("a.pth", out / "a.pth")
    assert os.listdir(out) == []


def test_stat_recomputes_hashes_when_the_sidecar_is_stale(remote, tmp_path):
    src = tmp_path / "s"
    src.write_bytes(b"one")
    remote.put("a.pth", src)
    (tmp_path / "remote" / "a.pth").write_bytes(b"two!")
    assert remote.stat("a.pth").hashes["sha256"] == hashlib.sha256(b"two!").hexdigest()


def test_internal_files_are_not_listed_nor_addressable(remote, tmp_path):
    remote.capabilities.put_bytes("c.json", b"{}")
    assert [o.key for o in remote.list()] == ["c.json"]
    with pytest.raises(ValueError):
        remote.capabilities.put_bytes(".ms-hashes/x", b"")


def test_concurrent_conditional_creates_have_one_winner(remote):
    results: list[str] = []

    def create(i: int) -> None:
        try:
            remote.capabilities.put_bytes("lock.json", str(i).encode(), if_none_match=True)
            results.append("won")
        except PreconditionFailed:
            results.append("lost")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["lost"] * 7 + ["won"]


@given(st.lists(st.sampled_from(["a", "ü b", "..", ".", "", "x.pth"]), min_size=1, max_size=4))
def test_keys_never_escape_the_root(segments):
    key = "/".join(segments)
    try:
        check_key(key)
    except ValueError:
        return
    assert ".." not in segments and "." not in segments and "" not in segments


# -- put_reusing: what only the local remote shows (the contract is in test_conformance.py) --

RANGE = MIB


def reusing_setup(
    tmp_path: Path, remote, source_key: str, size: int, changed: set[int]
) -> tuple[Path, Reuse]:
    """An old version stored under ``source_key``; a new file differing from it in the ranges
    ``changed`` (zeroed) and the Reuse a caller would compute."""
    old, new = tmp_path / "old.pth", tmp_path / "new.pth"
    make_file(old, size, seed=5)
    data = bytearray(old.read_bytes())
    for i in changed:
        data[i * RANGE : (i + 1) * RANGE] = bytes(len(data[i * RANGE : (i + 1) * RANGE]))
    new.write_bytes(bytes(data))
    remote.put(source_key, old)
    same = ranges_of_file(new, RANGE).same_as(ranges_of_file(old, RANGE))
    identity = dict(remote.stat(source_key).identity)
    return new, Reuse(source_key, identity, RANGE, frozenset(same))


def test_put_reusing_across_file_systems_copies_through_user_space(remote, tmp_path):
    """A remote folder on another mount (a NAS share inside the backup disk, here tmpfs): the
    kernel refuses the copy across file systems (EXDEV) and the bytes go through pread/pwrite."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to put the source on")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        (tmp_path / "remote" / "elsewhere").symlink_to(other)
        new, reuse = reusing_setup(tmp_path, remote, "elsewhere/old.pth", 5 * RANGE + 3, {2})
        sent: list[int] = []
        info, copied = remote.capabilities.put_reusing("new.pth", new, reuse, progress=sent.append)
    assert (copied, sum(sent)) == (4 * RANGE + 3, RANGE)
    assert (tmp_path / "remote" / "new.pth").read_bytes() == new.read_bytes()
    assert info.hashes["sha256"] == hashlib.sha256(new.read_bytes()).hexdigest()


def test_put_reusing_killed_resumes_after_the_last_finished_range(tmp_path):
    """The ranges finished before kill -9 are neither written nor copied again, and what a killed
    run leaves is invisible to listings, resumed, then cleaned away."""
    settings = {"type": "local", "path": str(tmp_path / "remote")}
    remote = open_provider("nas", settings)
    size = 12 * RANGE + 10
    changed = {0, 4, 8, 12}  # 12 is the 10-byte tail
    new, reuse = reusing_setup(tmp_path, remote, "m/old.pth", size, changed)
    doc = json.dumps({**dataclasses.asdict(reuse), "ranges": sorted(reuse.ranges)})
    mode = ("delta", doc)
    state = tmp_path / "state"

    # Paused once ranges 0 and 4 are written: 0 to 4 are finished.
    paused = kill_when_paused(start_worker(settings, "m/new.pth", new, state, 2 * RANGE, mode=mode))
    assert paused == 2 * RANGE
    left = sorted(p.name for p in (tmp_path / "remote" / "m").iterdir())
    assert [n for n in left if n.endswith(".incomplete")], "the killed run left its temp"
    assert [o.key for o in remote.list()] == ["m/old.pth"]

    proc = start_worker(settings, "m/new.pth", new, state, mode=mode)
    copied = int(wait_for(proc, "copied").split()[1])
    sent, sha = run_to_done(proc)
    assert sent == RANGE + 10  # ranges 8 and 12 (the tail)
    assert copied == 6 * RANGE  # 5, 6, 7, 9, 10, 11
    assert sha == hashlib.sha256(new.read_bytes()).hexdigest()
    assert (tmp_path / "remote" / "m" / "new.pth").read_bytes() == new.read_bytes()
    assert sorted(p.name for p in (tmp_path / "remote" / "m").iterdir()) == ["new.pth", "old.pth"]


def test_a_killed_put_reusing_is_aborted_once_stale(tmp_path):
    settings = {"type": "local", "path": str(tmp_path / "remote")}
    remote = open_provider("nas", settings)
    new, reuse = reusing_setup(tmp_path, remote, "old.pth", 4 * RANGE, {0, 2})
    doc = json.dumps({**dataclasses.asdict(reuse), "ranges": sorted(reuse.ranges)})
    kill_when_paused(
        start_worker(settings, "new.pth", new, tmp_path / "s", RANGE, mode=("delta", doc))
    )
    root = tmp_path / "remote"
    leftovers = [p for p in root.iterdir() if p.name.endswith(".incomplete")]
    assert len(leftovers) == 2  # the temp and its journal
    assert remote.capabilities.abort_incomplete_uploads() == 0  # fresh: maybe a push in progress
    for p in leftovers:
        os.utime(p, (time.time() - 3600,) * 2)
    assert remote.capabilities.abort_incomplete_uploads() == 2
    assert sorted(p.name for p in root.iterdir()) == [".ms-hashes", "old.pth"]
    # A later delta put starts afresh and succeeds.
    _, copied = remote.capabilities.put_reusing("new.pth", new, reuse)
    assert (root / "new.pth").read_bytes() == new.read_bytes()
    assert copied == 2 * RANGE


def test_put_reusing_refuses_a_source_replaced_while_it_ran(remote, tmp_path):
    """The source is checked again before the rename: replaced once the first range is written,
    after the copies had begun from the old file (whose bytes would still assemble the right
    object), the put is refused all the same and leaves nothing."""
    new, reuse = reusing_setup(tmp_path, remote, "old.pth", 4 * RANGE, {0})
    other = tmp_path / "other.pth"
    make_file(other, 4 * RANGE, seed=8)
    replaced: list[int] = []

    def replace_source(_delta: int) -> None:
        if not replaced:
            time.sleep(0.05)  # file systems stamp mtimes from a clock that ticks every few ms
            remote.put("old.pth", other)
            replaced.append(1)

    with pytest.raises(PreconditionFailed):
        remote.capabilities.put_reusing("new.pth", new, reuse, progress=replace_source)
    assert replaced
    root = tmp_path / "remote"
    assert sorted(p.name for p in root.iterdir()) == [".ms-hashes", "old.pth"]
