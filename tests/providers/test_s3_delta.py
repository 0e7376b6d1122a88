"""What the S3 delta put does on real servers beyond the conformance suite's contract: a server
without UploadPartCopy, a source rewritten while the upload runs (SeaweedFS refuses the copy by
CopySourceIfMatch; moto ignores that header, so the HEAD after the copies catches it), an exact
count of what a resumed run sends and copies, a transient failure retried, and where parts fall.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import boto3
import pytest

from providers import open_provider
from providers.base import Reuse
from providers.errors import NotFound, NotSupported, PreconditionFailed
from providers.ranges import ranges_of_file
from providers.s3.delta import copyable_parts, delta_part_size
from providers.s3.multipart import UploadJournal
from providers.s3.parts import MAX_PARTS, MIN_PART
from tests.providers.helpers import MIB, NO_WAIT
from tests.providers.workers import kill_when_paused, run_to_done, start_worker, wait_for

RS = 5 * MIB


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


def pending_uploads(settings: dict[str, Any]) -> list[dict]:
    """The multipart uploads in progress under the remote's prefix, as the server lists them."""
    session = boto3.session.Session(profile_name=settings["profile"])
    client = session.client("s3", endpoint_url=settings["endpoint_url"], region_name="us-east-1")
    answer = client.list_multipart_uploads(Bucket=settings["bucket"], Prefix=settings["prefix"])
    return answer.get("Uploads", [])


def nothing_left(remote, settings: dict[str, Any], tmp_path, key: str) -> None:
    with pytest.raises(NotFound):
        remote.stat(key)
    assert pending_uploads(settings) == []
    assert [p for p in (tmp_path / "state").rglob("*") if p.is_file()] == []  # no journal


def test_a_server_without_upload_part_copy_is_not_supported(seaweedfs, fault_proxy, tmp_path):
    settings = seaweedfs.settings(
        endpoint_url=fault_proxy.url, max_request_concurrency=1, retry=NO_WAIT
    )
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    old, new = versions(tmp_path, 4 * RS, changed={0})
    remote.put("m/v1.pth", old)
    reuse = reuse_of(remote, "m/v1.pth", old, new)
    fault_proxy.add("501", method="PUT", header="x-amz-copy-source", limit=100)
    with pytest.raises(NotSupported):
        remote.capabilities.put_reusing("m/v2.pth", new, reuse)
    # Never retried (a retried copy alone would be refused 5 times): each of the 3 copied parts
    # reaches the server at most once. How many of them go before the first refusal stops the
    # upload depends on the scheduler (the copy pool may start the next one meanwhile).
    assert 1 <= fault_proxy.faults <= 3
    nothing_left(remote, settings, tmp_path, "m/v2.pth")
    fault_proxy.clear()
    remote.put("m/v2.pth", new)  # what the caller does next
    assert remote.stat("m/v2.pth").hashes["sha256"] == make_sha(new)


def test_md5_part_checksums_on_seaweedfs_leave_copies_unverifiable(seaweedfs, tmp_path):
    """Measured: in an upload without a checksum algorithm SeaweedFS gives a copied part an ETag
    that is not its md5, so nothing vouches for the copied bytes: not supported, nothing left."""
    settings = seaweedfs.settings(part_checksum="md5")
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    old, new = versions(tmp_path, 3 * RS, changed={2})
    remote.put("m/v1.pth", old)
    with pytest.raises(NotSupported):
        remote.capabilities.put_reusing("m/v2.pth", new, reuse_of(remote, "m/v1.pth", old, new))
    nothing_left(remote, settings, tmp_path, "m/v2.pth")


@pytest.mark.parametrize("server", ["seaweedfs", "moto"])
def test_source_rewritten_while_parts_go_up_is_never_completed(
    request, server, seaweedfs, tmp_path
):
    base = (
        seaweedfs.settings()
        if server == "seaweedfs"
        else request.getfixturevalue("s3_moto_settings")
    )
    settings = {**base, "max_request_concurrency": 1}  # parts strictly in order
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    writer = open_provider("w", settings, state_dir=tmp_path / "writer")
    old, new = versions(tmp_path, 5 * RS, changed={0})
    remote.put("m/v1.pth", old)
    reuse = reuse_of(remote, "m/v1.pth", old, new)
    rewritten: list[int] = []

    def rewrite_source(_sent: int) -> None:
        # After part 1 is sent, before any copy: another writer puts an object whose reused
        # ranges hold the very same bytes (only range 0 differs), under a new ETag.
        if not rewritten:
            rewritten.append(1)
            writer.put("m/v1.pth", new)

    with pytest.raises(PreconditionFailed):
        remote.capabilities.put_reusing("m/v2.pth", new, reuse, progress=rewrite_source)
    assert rewritten
    nothing_left(remote, settings, tmp_path, "m/v2.pth")


def test_killed_delta_put_neither_sends_nor_copies_a_finished_part_again(
    seaweedfs, fault_proxy, tmp_path
):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url, max_request_concurrency=1)
    size = 6 * RS  # parts 1, 2, 4, 5 copied; 3 sent (then killed), 6 sent
    old, new = versions(tmp_path, size, changed={2, 5})
    remote = open_provider("r", settings, state_dir=tmp_path / "setup")
    remote.put("m/v1.pth", old)
    reuse = reuse_of(remote, "m/v1.pth", old, new)
    delta = ("delta", json.dumps({**asdict(reuse), "ranges": sorted(reuse.ranges)}))
    state = tmp_path / "state"
    kill_when_paused(start_worker(settings, "m/v2.pth", new, state, RS, mode=delta))
    # copies run on connections of their own, beside the sends: how many of parts 1, 2, 4 and
    # 5 the killed run finished depends on timing; its journal says which
    key = remote.inner._key("m/v2.pth")
    _, finished = UploadJournal(state / "uploads", seaweedfs.bucket, key).load()
    copies_done = len({1, 2, 4, 5} & set(finished))

    fault_proxy.clear()
    second = start_worker(settings, "m/v2.pth", new, state, mode=delta)
    copied = int(wait_for(second, "copied").split()[1])
    sent, sha = run_to_done(second)
    assert sent == RS  # part 6 only: part 3 went up before the kill
    assert copied % RS == 0 and copied <= (4 - copies_done) * RS  # no finished part again
    assert fault_proxy.requests["PUT"] == copied // RS + 1  # those copies, part 6 sent
    assert RS <= fault_proxy.body_bytes < RS + 64 * 1024  # the rest: small XML bodies
    assert sha == make_sha(new)
    back = tmp_path / "back.pth"
    remote.get("m/v2.pth", back)
    assert back.read_bytes() == new.read_bytes()


def test_a_transient_failure_is_retried_and_resumes(seaweedfs, fault_proxy, tmp_path):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url, retry=NO_WAIT)
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    old, new = versions(tmp_path, 6 * RS + 3, changed={1, 4})
    remote.put("m/v1.pth", old)
    reuse = reuse_of(remote, "m/v1.pth", old, new)
    fault_proxy.clear()
    fault_proxy.add("reset", method="PUT", header="x-amz-copy-source", every=2, limit=1)
    sent: list[int] = []
    info, _ = remote.capabilities.put_reusing("m/v2.pth", new, reuse, progress=sent.append)
    assert fault_proxy.faults == 1
    assert sum(sent) == 2 * RS  # no part sent twice across the attempts
    assert info.hashes["sha256"] == make_sha(new)
    remote.get("m/v2.pth", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == new.read_bytes()


@pytest.mark.parametrize(
    ("size", "chunk", "range_size"),
    [(40 * MIB, 5 * MIB, 8 * MIB), (40 * MIB, 16 * MIB, 8 * MIB), (100 * 1024**3, 8 * MIB, 8 * MIB),
     (12 * MIB, 5 * MIB, 3 * MIB)],
)  # fmt: skip
def test_parts_are_whole_ranges_within_s3_limits(size, chunk, range_size):
    part = delta_part_size(size, chunk, range_size)
    assert part % range_size == 0
    assert part >= max(chunk, MIN_PART)
    assert -(-size // part) <= MAX_PARTS


def test_a_part_is_copied_only_when_all_its_ranges_are_reusable_within_the_source():
    reuse = Reuse("v1", {"etag": "e"}, 4 * MIB, frozenset({0, 1, 2, 4, 5, 6, 7}))
    # 8 MiB parts of two ranges: part 2 holds range 3 (changed); part 4 ends past the source.
    assert copyable_parts(32 * MIB, 8 * MIB, reuse, source_size=30 * MIB) == {1, 3}
    assert copyable_parts(32 * MIB, 8 * MIB, reuse, source_size=32 * MIB) == {1, 3, 4}
    # A short last part: copied when the source holds its bytes, however long the source is.
    assert copyable_parts(30 * MIB, 8 * MIB, reuse, source_size=30 * MIB) == {1, 3, 4}
    assert copyable_parts(30 * MIB, 8 * MIB, reuse, source_size=29 * MIB) == {1, 3}


@pytest.mark.parametrize("server", ["seaweedfs", "moto"])
def test_the_assembled_object_has_the_multipart_etag_of_the_files_parts(
    request, server, seaweedfs, tmp_path
):
    """What the check after completion relies on, measured on both servers: copied and sent
    parts alike count by the md5 of their bytes in the object's ETag."""
    if server == "seaweedfs":
        settings = seaweedfs.settings()
    else:
        settings = request.getfixturevalue("s3_moto_settings")
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    old, new = versions(tmp_path, 3 * RS + 10, changed={1})
    remote.put("m/v1.pth", old)
    info, copied = remote.capabilities.put_reusing(
        "m/v2.pth", new, reuse_of(remote, "m/v1.pth", old, new)
    )
    assert copied == 2 * RS + 10
    data = new.read_bytes()
    md5s = b"".join(hashlib.md5(data[i : i + RS]).digest() for i in range(0, len(data), RS))
    assert info.etag == f"{hashlib.md5(md5s).hexdigest()}-4"
