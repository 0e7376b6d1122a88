"""Streaming reads (``capabilities.iter_bytes``) through the retry layer: resuming a stream
broken by a transient error at the byte offset already yielded, on a real local provider whose
stream breaks on purpose (a small subclass, no mocking library), and on S3 through the fault
proxy."""

from __future__ import annotations

import hashlib
import random

import pytest

from providers import open_provider
from providers.errors import TransientError
from providers.local import LocalProvider
from providers.retry import RetryingProvider
from tests.providers.helpers import FAST, NO_WAIT, Minimal
from tests.servers.drive import GDRIVE_TEST_CHUNK
from tests.servers.seaweed import PART

CHUNK = 64 * 1024


class Breaking(LocalProvider):
    """Each open of a stream pops the next entry of ``breaks``: after that many chunks it raises
    TransientError (None: the stream runs to the end). Records every ``start`` asked for."""

    def __init__(self, *args, breaks=(), **kw):
        super().__init__(*args, **kw)
        self.breaks = list(breaks)
        self.starts: list[int] = []
        self.closed = 0

    def iter_bytes(self, key, *, chunk_size=8 << 20, progress=None, start=0):
        self.starts.append(start)
        limit = self.breaks.pop(0) if self.breaks else None
        try:
            stream = super().iter_bytes(key, chunk_size=chunk_size, progress=progress, start=start)
            for n, chunk in enumerate(stream):
                if n == limit:
                    raise TransientError("connection reset by peer")
                yield chunk
            if limit is not None:
                raise TransientError("connection reset by peer")
        finally:
            self.closed += 1


def make_remote(tmp_path, size, *breaks) -> tuple[Breaking, bytes]:
    root = tmp_path / "remote"
    root.mkdir()
    inner = Breaking("breaking", root, breaks=breaks)
    data = random.Random(1).randbytes(size)
    (root / "m.pth").write_bytes(data)
    return inner, data


def test_streamer_is_exposed_exactly_when_the_inner_provider_streams(tmp_path):
    assert LocalProvider("l", tmp_path).capabilities.iter_bytes is not None
    assert RetryingProvider(LocalProvider("l", tmp_path), FAST).capabilities.iter_bytes is not None
    bare = RetryingProvider(Minimal(), FAST)
    assert bare.capabilities.iter_bytes is None
    assert not hasattr(bare, "iter_bytes")


def test_a_broken_stream_resumes_at_the_offset_already_yielded(tmp_path):
    inner, data = make_remote(tmp_path, 10 * CHUNK + 5, 3, 0, 2)
    moved: list[int] = []
    stream = RetryingProvider(inner, FAST).capabilities.iter_bytes(
        "m.pth", chunk_size=CHUNK, progress=moved.append
    )
    out = b"".join(stream)
    assert out == data
    assert inner.starts == [0, 3 * CHUNK, 3 * CHUNK, 5 * CHUNK]  # never refetched from 0
    assert sum(moved) == len(data)  # no byte counted twice


def test_a_dead_stream_fails_after_the_attempts(tmp_path):
    inner, _ = make_remote(tmp_path, 4 * CHUNK, 1, 0, 0, 0, 0)
    with pytest.raises(TransientError):
        b"".join(RetryingProvider(inner, FAST).capabilities.iter_bytes("m.pth", chunk_size=CHUNK))
    assert inner.starts == [0, CHUNK, CHUNK, CHUNK]  # one chunk arrived, then 4 tries for the next


def test_stopping_early_closes_the_inner_stream(tmp_path):
    inner, data = make_remote(tmp_path, 4 * CHUNK)
    stream = RetryingProvider(inner, FAST).capabilities.iter_bytes("m.pth", chunk_size=CHUNK)
    assert next(stream) == data[:CHUNK]
    assert inner.closed == 0
    stream.close()
    assert inner.closed == 1


def test_s3_stream_survives_wire_faults_without_starting_over(seaweedfs, fault_proxy, tmp_path):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    remote = open_provider(
        "r", {**settings, "retry": {**NO_WAIT, "attempts": 6}}, state_dir=tmp_path / "state"
    )
    data = random.Random(2).randbytes(3 * PART + 5)
    (tmp_path / "s").write_bytes(data)
    remote.put("d.pth", tmp_path / "s")
    fault_proxy.clear()
    fault_proxy.add("cut", method="GET", limit=2)  # half the body, then a reset
    fault_proxy.add("503", method="GET", limit=1)
    fault_proxy.add("reset", method="HEAD", limit=1)
    files_before = sorted(p for p in tmp_path.rglob("*"))
    chunk = 1024 * 1024
    digest, moved = hashlib.sha256(), []
    for piece in remote.capabilities.iter_bytes("d.pth", chunk_size=chunk, progress=moved.append):
        digest.update(piece)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert sum(moved) == len(data)
    assert fault_proxy.faults == 4
    # Resumed, not restarted: starting over after each cut would cost at least 2x the object
    # (half, then half again, then all of it). Resuming costs the bytes in flight at each reset.
    assert fault_proxy.response_bytes < 1.75 * len(data)
    assert sorted(p for p in tmp_path.rglob("*")) == files_before  # nothing written to disk


def test_gdrive_stream_resumes_through_the_retry_layer(
    gdrive_emulator_settings, drive_emulator, tmp_path
):
    # chunk_retries 0: the backend gives up on the first failed chunk, so the retry layer's
    # resume at the yielded offset is what carries the stream.
    settings = {**gdrive_emulator_settings, "chunk_retries": 0, "retry": {**NO_WAIT, "attempts": 3}}
    remote = open_provider("g", settings, state_dir=tmp_path / "state")
    data = random.Random(3).randbytes(4 * GDRIVE_TEST_CHUNK + 5)
    (tmp_path / "s").write_bytes(data)
    remote.put("m.pth", tmp_path / "s")
    drive_emulator.reset_counters()
    drive_emulator.inject("GET", r"^/drive/v2/files/[^/]+$", status=503, times=2, skip=1)
    out = b"".join(remote.capabilities.iter_bytes("m.pth", chunk_size=GDRIVE_TEST_CHUNK))
    assert out == data
    assert drive_emulator.counter("faults") == 2
    assert drive_emulator.counter("media_bytes_sent") == len(data)  # no byte fetched twice
