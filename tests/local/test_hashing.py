"""Streaming hashes, the hash cache, and atomic copies (disk full on a real small tmpfs)."""

from __future__ import annotations

import hashlib
import os

import pytest

from agent.local import hashing
from agent.local.hashing import HashCache, HashMismatch, atomic_copy, hash_file


def test_hash_file_matches_hashlib_in_one_pass(checkpoint):
    data = checkpoint.read_bytes()
    before = hashing.bytes_read()
    digests = hash_file(checkpoint, ("sha256", "md5"))
    assert digests == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
    }
    assert hashing.bytes_read() - before == len(data)


def test_cache_never_rereads_an_unchanged_file(tmp_path, checkpoint):
    cache = HashCache(tmp_path / "state")
    first = cache.sha256(checkpoint)
    cache.save()
    reopened = HashCache(tmp_path / "state")
    before = hashing.bytes_read()
    assert reopened.sha256(checkpoint) == first
    assert hashing.bytes_read() == before  # not a byte read
    # Writing the file changes its stat, so the cache no longer vouches for it.
    with open(checkpoint, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff")
    assert reopened.lookup(checkpoint) is None
    assert reopened.sha256(checkpoint) != first


def test_damaged_cache_is_ignored(tmp_path, checkpoint):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "hashes.json").write_text("{not json")
    cache = HashCache(tmp_path / "state")
    assert cache.sha256(checkpoint) == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def test_atomic_copy_big_file_hashes_what_it_writes(tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * hashing.CHUNK + 12345))  # several pipeline buffers
    dest = tmp_path / "out" / "copy.bin"
    dest.parent.mkdir()
    digests = atomic_copy(src, dest, algos=("sha256", "md5"))
    assert dest.read_bytes() == src.read_bytes()
    assert digests["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert digests["md5"] == hashlib.md5(src.read_bytes()).hexdigest()
    assert os.listdir(dest.parent) == ["copy.bin"]


def test_copy_with_wrong_expected_hash_leaves_nothing(tmp_path, checkpoint):
    dest = tmp_path / "dest.pth"
    with pytest.raises(HashMismatch):
        atomic_copy(checkpoint, dest, expected_sha256="0" * 64)
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".incomplete")]


def test_disk_full_removes_the_partial_temp_and_keeps_the_source(tmp_path, tmpfs):
    small = tmpfs("8m", "small")
    src = tmp_path / "big.pth"
    payload = os.urandom(12 * 1024 * 1024)
    src.write_bytes(payload)
    old = small / "big.pth"
    old.write_bytes(b"previous good copy")
    with pytest.raises(OSError) as info:
        atomic_copy(src, old)
    assert info.value.errno == 28  # ENOSPC, from the real file system
    assert os.listdir(small) == ["big.pth"]  # no temp left behind
    assert old.read_bytes() == b"previous good copy"  # the old copy was never touched
    assert src.read_bytes() == payload


def test_atomic_write_bytes_replaces_whole(tmp_path):
    target = tmp_path / "catalog.json"
    hashing.atomic_write_bytes(target, b"one")
    hashing.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["catalog.json"]
