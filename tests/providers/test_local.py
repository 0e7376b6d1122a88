"""Local-backend specifics the conformance suite does not cover."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers import open_provider
from providers.errors import IntegrityError, NotFound, PreconditionFailed
from providers.transfer import check_key


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
