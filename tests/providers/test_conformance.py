"""The one conformance suite: every provider, opened through ``open_provider`` (so through the
retry layer, as the agent sees it), on a real server. Tests branch on declared capabilities and
operations, never on the provider's class."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from providers import open_provider
from providers.config import BACKEND_KEYS
from providers.errors import (
    ConfigError,
    IntegrityError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
)
from tests.providers.helpers import MIB, make_file
from tests.providers.workers import kill_when_paused, run_to_done, start_worker


def part_size(settings: dict[str, Any]) -> int:
    """The backend's part / chunk size from its settings (names differ per backend)."""
    for key in ("multipart_chunksize", "chunk_size", "chunksize"):
        if key in settings:
            return int(settings[key])
    return 5 * MIB


def sizes_for(settings: dict[str, Any]) -> list[int]:
    part = part_size(settings)
    return [0, 1, part - 1, part + 1, 3 * part + 7]


@pytest.mark.parametrize("which", range(5), ids=["0", "1", "part-1", "part+1", "3parts"])
def test_round_trip_is_byte_identical(remote, remote_settings, tmp_path, which):
    size = sizes_for(remote_settings)[which]
    src = tmp_path / "src.bin"
    hashes = make_file(src, size, seed=which)
    moved: list[int] = []
    info = remote.put("models/ckpt.pth", src, progress=moved.append)
    assert info.size == size
    assert sum(moved) == size
    for name in remote.capabilities.hashes:
        assert info.hashes[name] == hashes[name]
    stat = remote.stat("models/ckpt.pth")
    assert stat.size == size
    for name in remote.capabilities.hashes:
        assert stat.hashes[name] == hashes[name], name
    dest = tmp_path / "out" / "ckpt.pth"
    got: list[int] = []
    remote.get("models/ckpt.pth", dest, expected_hashes=hashes, progress=got.append)
    assert dest.read_bytes() == src.read_bytes()
    assert sum(got) == size
    assert sorted(os.listdir(dest.parent)) == ["ckpt.pth"]  # no temp files left behind


def test_put_with_expected_hashes_round_trips(remote, tmp_path):
    src = tmp_path / "a.bin"
    hashes = make_file(src, 2 * MIB + 3)
    remote.put("a.bin", src, expected_hashes=hashes)
    remote.get("a.bin", tmp_path / "b.bin", expected_hashes={"sha256": hashes["sha256"]})
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()


def test_missing_key_is_not_found(remote, tmp_path):
    with pytest.raises(NotFound):
        remote.stat("nope/missing.pth")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FileNotFoundError):  # NotFound is a FileNotFoundError too
        remote.get("nope/missing.pth", out / "x")
    assert os.listdir(out) == []


def test_list_by_prefix(remote, tmp_path):
    src = tmp_path / "s"
    src.write_bytes(b"hello")
    for key in ("a/one.pth", "a/two.pth", "ab.pth", "b/three.pth"):
        remote.put(key, src)
    assert sorted(o.key for o in remote.list("a/")) == ["a/one.pth", "a/two.pth"]
    assert sorted(o.key for o in remote.list("a")) == ["a/one.pth", "a/two.pth", "ab.pth"]
    everything = {o.key: o.size for o in remote.list()}
    assert everything == {"a/one.pth": 5, "a/two.pth": 5, "ab.pth": 5, "b/three.pth": 5}
    assert list(remote.list("zzz")) == []


def test_delete_twice(remote, tmp_path):
    src = tmp_path / "s"
    src.write_bytes(b"x" * 10)
    remote.put("d.pth", src)
    remote.delete("d.pth")
    remote.delete("d.pth")  # a missing key is not an error
    with pytest.raises(NotFound):
        remote.stat("d.pth")
    assert [o.key for o in remote.list()] == []


@pytest.mark.parametrize("key", ["dir with space/mödel ñ v1.pth", "日本語/チェックポイント.bin"])
def test_unicode_and_spaces_in_keys(remote, tmp_path, key):
    src = tmp_path / "s"
    hashes = make_file(src, 1000)
    remote.put(key, src)
    assert [o.key for o in remote.list()] == [key]
    remote.get(key, tmp_path / "back", expected_hashes=hashes)
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


@pytest.mark.parametrize("size_of", ["small", "multipart"])
def test_wrong_expected_hash_fails_and_leaves_nothing(remote, remote_settings, tmp_path, size_of):
    src = tmp_path / "s"
    size = 100 if size_of == "small" else 2 * part_size(remote_settings) + 5
    make_file(src, size)
    with pytest.raises(IntegrityError):
        remote.put("bad.pth", src, expected_hashes={"sha256": "0" * 64})
    with pytest.raises(NotFound):
        remote.stat("bad.pth")
    assert list(remote.list()) == []


def test_get_with_wrong_expected_hash_leaves_no_file(remote, tmp_path):
    src = tmp_path / "s"
    make_file(src, 3000)
    remote.put("k.pth", src)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError):
        remote.get("k.pth", out / "k.pth", expected_hashes={"sha256": "1" * 64})
    assert os.listdir(out) == []


def test_interrupted_download_leaves_no_destination_file(remote, remote_settings, tmp_path):
    src = tmp_path / "s"
    make_file(src, 2 * part_size(remote_settings) + 11)
    remote.put("big.pth", src)
    out = tmp_path / "out"
    out.mkdir()

    class Interrupted(Exception):
        pass

    def interrupt(_delta: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        remote.get("big.pth", out / "big.pth", progress=interrupt)
    assert os.listdir(out) == []


def test_overwrite_replaces_content(remote, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_file(a, 1234, seed=1)
    hashes_b = make_file(b, 4321, seed=2)
    remote.put("same.pth", a)
    remote.put("same.pth", b)
    remote.get("same.pth", tmp_path / "c", expected_hashes=hashes_b)
    assert (tmp_path / "c").read_bytes() == b.read_bytes()


def test_identity_tells_a_rewrite_from_the_same_object(remote, tmp_path):
    """What push records about an object (its identity) stays the same while the object does,
    and changes when it is rewritten, even with the same size; a listing never contradicts stat."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_file(a, 50_000, seed=1)
    make_file(b, 50_000, seed=2)
    put = remote.put("same.pth", a)
    first = dict(remote.stat("same.pth").identity)
    assert first, "a backend must say something that identifies a stored object"
    assert dict(put.identity) == first
    assert dict(remote.stat("same.pth").identity) == first
    listed = {i.key: dict(i.identity) for i in remote.list("")}["same.pth"]
    assert all(first[k] == v for k, v in listed.items() if k in first)
    assert listed, "listings must carry enough identity to notice a replaced object"
    time.sleep(0.05)  # file systems stamp mtimes from a clock that ticks every few ms
    remote.put("same.pth", b)
    second = dict(remote.stat("same.pth").identity)
    assert any(first[k] != second[k] for k in first.keys() & second.keys())


def test_server_side_copy_where_declared(remote, tmp_path):
    if not remote.capabilities.server_side_copy:
        assert remote.capabilities.copy is None
        return
    assert remote.capabilities.copy is not None
    src = tmp_path / "s"
    hashes = make_file(src, 70_000)
    remote.put("orig/a.pth", src)
    info = remote.capabilities.copy("orig/a.pth", "copies/b.pth")
    assert info.size == 70_000
    for name in remote.capabilities.hashes:
        assert info.hashes[name] == hashes[name]
    remote.delete("orig/a.pth")  # the copy is independent of its source
    remote.get("copies/b.pth", tmp_path / "b", expected_hashes=hashes)
    assert (tmp_path / "b").read_bytes() == src.read_bytes()


def test_small_objects_and_conditional_writes(remote):
    if not remote.capabilities.small_objects:
        return
    get_bytes, put_bytes = remote.capabilities.get_bytes, remote.capabilities.put_bytes
    first = put_bytes(".model-safety/catalog.json", b'{"v": 1}')
    data, info = get_bytes(".model-safety/catalog.json")
    assert data == b'{"v": 1}'
    assert info.etag == first.etag
    if not remote.capabilities.conditional_write:
        return
    with pytest.raises(PreconditionFailed):
        put_bytes(".model-safety/catalog.json", b"x", if_none_match=True)
    second = put_bytes(".model-safety/catalog.json", b'{"v": 2}', if_match=info.etag)
    with pytest.raises(PreconditionFailed):  # a writer holding the old etag lost the race
        put_bytes(".model-safety/catalog.json", b'{"v": 3}', if_match=info.etag)
    assert get_bytes(".model-safety/catalog.json")[0] == b'{"v": 2}'
    with pytest.raises(PreconditionFailed):  # If-Match on a missing key: 404 or 412, same error
        put_bytes("missing.json", b"x", if_match=second.etag)
    created = put_bytes("new.json", b"n", if_none_match=True)
    assert created.etag


def test_bad_keys_are_rejected(remote, tmp_path):
    src = tmp_path / "s"
    src.write_bytes(b"x")
    for key in ("../escape.pth", "/abs.pth", "a/../../b.pth", ""):
        with pytest.raises(ValueError):
            remote.put(key, src)


def test_streaming_read_yields_the_exact_bytes(remote, remote_settings, tmp_path):
    if remote.capabilities.iter_bytes is None:
        pytest.skip("this backend does not stream")
    src = tmp_path / "s"
    hashes = make_file(src, 2 * part_size(remote_settings) + 13, seed=7)
    remote.put("stream/big.pth", src)
    files_before = sorted(p for p in tmp_path.rglob("*"))
    digest, chunks, moved = hashlib.sha256(), [], []
    chunk_size = MIB
    for chunk in remote.capabilities.iter_bytes(
        "stream/big.pth", chunk_size=chunk_size, progress=moved.append
    ):
        digest.update(chunk)
        chunks.append(len(chunk))
    assert digest.hexdigest() == hashes["sha256"]
    assert sum(chunks) == sum(moved) == src.stat().st_size
    assert max(chunks) <= chunk_size  # memory bounded by the chunk, not the object
    assert sorted(p for p in tmp_path.rglob("*")) == files_before  # nothing written locally
    # A caller that stops early is fine, and the object is still readable afterwards.
    stream = remote.capabilities.iter_bytes("stream/big.pth", chunk_size=chunk_size)
    assert len(next(stream)) > 0
    stream.close()
    assert b"".join(remote.capabilities.iter_bytes("stream/big.pth")) == src.read_bytes()


def test_streaming_read_of_missing_and_empty_objects(remote, tmp_path):
    if remote.capabilities.iter_bytes is None:
        pytest.skip("this backend does not stream")
    with pytest.raises(NotFound):
        b"".join(remote.capabilities.iter_bytes("nope/missing.pth"))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    remote.put("empty.pth", empty)
    moved: list[int] = []
    assert b"".join(remote.capabilities.iter_bytes("empty.pth", progress=moved.append)) == b""
    assert sum(moved) == 0


# -- the contract every backend keeps at its edges --------------------------------------------


def test_unknown_setting_names_the_nearest(remote_settings):
    kind = remote_settings["type"]
    required = BACKEND_KEYS[kind].required[0]
    with pytest.raises(ConfigError, match=f"did you mean '{required}'"):
        open_provider("r", {**remote_settings, required + "x": 1})
    # the agent's own keys are valid for every backend, so a typo of one is named too
    with pytest.raises(ConfigError, match="did you mean 'auto_push'"):
        open_provider("r", {**remote_settings, "autopush": True})


def test_bad_credentials_are_permission_denied_without_retry_storm(backend, tmp_path, caplog):
    if backend.bad_credentials is None:
        pytest.skip("no credentials to get wrong on this server")
    settings = {**backend.bad_credentials, "retry": {"attempts": 4, "initial_wait": 0,
                                                     "max_wait": 0, "jitter": 0}}  # fmt: skip
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    src = tmp_path / "s"
    make_file(src, 100)
    before = backend.requests()
    with caplog.at_level(logging.WARNING, logger="providers.retry"):
        with pytest.raises(PermissionDenied) as info:
            remote.put("x.pth", src)
        assert backend.requests() - before == 1  # neither the SDK nor our layer retried
        with pytest.raises(PermissionError):  # PermissionDenied is a PermissionError too
            remote.stat("x.pth")
    assert "retrying" not in caplog.text
    message = str(info.value)
    assert "remote 'r'" in message
    assert info.value.__cause__ is not None  # the SDK's error is chained
    if backend.secret:
        assert backend.secret not in message


SIZE = 64 * MIB + 12345


def _resumable(remote_settings, tmp_path) -> None:
    probe = open_provider("probe", remote_settings, state_dir=tmp_path / "probe")
    probe.close()
    if not probe.capabilities.resumable:
        pytest.skip("this backend does not resume interrupted transfers")


def tear_journals(state: Path) -> int:
    """What kill -9 in the middle of an append leaves: a torn last line in every journal."""
    journals = [p for p in state.rglob("*.jsonl")]
    for path in journals:
        with open(path, "ab") as f:
            f.write(b'{"part": 99, "etag": "')
    return len(journals)


@pytest.mark.slow
def test_put_killed_with_sigkill_resumes_and_sends_only_what_is_missing(backend, tmp_path):
    settings = {**backend.settings, **backend.big_transfer}
    _resumable(settings, tmp_path)
    src = tmp_path / "model.pth"
    sha = make_file(src, SIZE, seed=7)["sha256"]
    state = tmp_path / "state"

    paused = kill_when_paused(start_worker(settings, "m/model.pth", src, state, SIZE // 2))
    assert paused >= SIZE // 2
    assert tear_journals(state) >= 1, "the killed run left its journal"

    sent, stored_sha = run_to_done(start_worker(settings, "m/model.pth", src, state))
    assert sent <= SIZE - paused  # what the killed run had sent was not sent again
    assert stored_sha == sha
    assert [p for p in state.rglob("*") if p.is_file()] == []  # no journal left

    remote = open_provider("check", settings, state_dir=tmp_path / "other")
    back = tmp_path / "back.pth"
    info = remote.get("m/model.pth", back, expected_hashes={"sha256": sha})
    assert info.size == SIZE
    assert back.read_bytes() == src.read_bytes()


@pytest.mark.slow
def test_get_killed_with_sigkill_resumes_and_fetches_only_what_is_missing(backend, tmp_path):
    settings = {**backend.settings, **backend.big_transfer}
    _resumable(settings, tmp_path)
    src = tmp_path / "model.pth"
    sha = make_file(src, SIZE, seed=11)["sha256"]
    open_provider("up", settings, state_dir=tmp_path / "up").put("m/model.pth", src)
    dest = tmp_path / "restore" / "model.pth"
    state = tmp_path / "state"

    first = start_worker(settings, "m/model.pth", dest, state, SIZE // 2, mode=("get",))
    paused = kill_when_paused(first)
    assert paused >= SIZE // 2
    assert not dest.exists()
    assert tear_journals(state) >= 1, "the killed run left its journal"
    assert [p.name for p in dest.parent.glob(".model.pth.*.incomplete")], "and its temp file"

    received, got_sha = run_to_done(
        start_worker(settings, "m/model.pth", dest, state, mode=("get",))
    )
    # What was written before the kill is not fetched again; at most what was in flight at the
    # kill (one range or chunk per connection) is.
    in_flight = settings.get("max_request_concurrency", 1) * part_size(settings)
    assert received < SIZE
    assert received <= SIZE - paused + in_flight
    assert got_sha == sha
    assert dest.read_bytes() == src.read_bytes()
    assert os.listdir(dest.parent) == ["model.pth"]  # no temp file left
    assert [p for p in state.rglob("*") if p.is_file()] == []  # and no journal


def test_providers_never_import_the_agent():
    """The storage layer knows nothing of models: every providers module loads without agent/."""
    root = Path(__file__).resolve().parents[2]
    modules = sorted(
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for p in (root / "providers").rglob("*.py")
    )
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] == 'agent'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
