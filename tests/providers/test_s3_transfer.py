"""How S3 transfers spend their requests. A download asks one ranged GET per run of consecutive
ranges (fewer requests, less CPU), while every range is still marked done, in order, as soon as
its last byte is written (so the hasher follows and a kill loses at most one range per
connection). A resumed upload does not resend a part the server already holds with the md5 of
our bytes as its ETag, even when the killed run could not journal it."""

from __future__ import annotations

import hashlib
import json
import random
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers import open_provider
from providers.errors import TransientError
from providers.s3.bucket import Bucket
from providers.s3.download import MAX_GET, Partial, RangedDownload, stretches
from providers.s3.errors import s3_errors
from providers.s3.multipart import UploadJournal
from providers.s3.parts import crc32_b64
from providers.transfer import Progress
from tests.servers.seaweed import PART


@given(
    todo=st.lists(st.integers(0, 300), unique=True).map(sorted),
    rsize=st.sampled_from([5 << 20, 8 << 20, 64 << 20]),
    concurrency=st.integers(1, 16),
)
def test_stretches_cover_the_missing_ranges_in_runs(todo, rsize, concurrency):
    runs = stretches(todo, rsize, concurrency)
    assert [i for run in runs for i in run] == todo  # each missing range once, in order
    for run in runs:
        assert run == list(range(run[0], run[0] + len(run)))  # one contiguous byte range
        assert len(run) * rsize <= max(rsize, MAX_GET)
    if todo:  # enough GETs to keep every connection busy when there are ranges enough
        assert len(runs) >= min(len(todo), concurrency)


def test_a_get_spanning_ranges_marks_each_range_in_order(seaweedfs, fault_proxy, tmp_path):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url, max_request_concurrency=1)
    remote = open_provider("r", settings, state_dir=tmp_path / "state")
    data = random.Random(3).randbytes(3 * PART + 7)  # 4 ranges: 2 GETs of 2 ranges each
    (tmp_path / "src").write_bytes(data)
    remote.put("d.pth", tmp_path / "src")
    inner = remote.inner
    info = inner.stat("d.pth")
    fault_proxy.clear()
    marks: list[int] = []
    dest = tmp_path / "out" / "d.pth"
    dest.parent.mkdir()
    bucket = Bucket(inner.client, inner.bucket, lambda what: s3_errors("r", inner.bucket, what))
    partial = Partial(tmp_path / "out" / ".d.pth.t.incomplete", info.etag, len(data), PART)
    download = RangedDownload(bucket, inner._key("d.pth"), partial, concurrency=1, what="get d.pth")
    actual = download.run(
        dest, {"sha256": hashlib.sha256(data).hexdigest()}, Progress(), marks.append
    )
    assert dest.read_bytes() == data
    assert actual["sha256"] == hashlib.sha256(data).hexdigest()
    assert marks == [0, 1, 2, 3]
    assert fault_proxy.requests["GET"] == 2


def _stopped_upload(seaweedfs, fault_proxy, tmp_path, seed, failing_part):
    """An upload of 3 parts stopped by a 503 on ``failing_part``: the other parts that went
    through are on the server and in the journal. Returns the settings, the file, the journal."""
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url, max_request_concurrency=1)
    remote = open_provider("r", {**settings, "retry": {"attempts": 1}}, state_dir=tmp_path / "st")
    src = tmp_path / "s"
    src.write_bytes(random.Random(seed).randbytes(3 * PART))
    fault_proxy.add("503", method="PUT", path_contains=f"partNumber={failing_part}", limit=1)
    with pytest.raises(TransientError):
        remote.put("u.pth", src)
    journal = UploadJournal(
        tmp_path / "st" / "uploads", seaweedfs.bucket, remote.inner._key("u.pth")
    )
    journaled = [json.loads(line)["part"] for line in journal.path.read_text().splitlines()[1:]]
    assert failing_part not in journaled and set(range(1, failing_part)) <= set(journaled)
    return settings, src, journal


def test_a_part_sent_but_not_journaled_is_not_sent_again(seaweedfs, fault_proxy, tmp_path):
    settings, src, journal = _stopped_upload(seaweedfs, fault_proxy, tmp_path, 8, failing_part=3)
    # What a run killed after sending part 2, before its answer came back, leaves behind.
    lines = journal.path.read_text().splitlines()
    assert [json.loads(line)["part"] for line in lines[1:]] == [1, 2]
    journal.path.write_text("\n".join(lines[:2]) + "\n")
    fault_proxy.clear()
    remote = open_provider("r", settings, state_dir=tmp_path / "st")
    info = remote.put("u.pth", src)
    assert PART <= fault_proxy.body_bytes < PART + 4096  # part 3 (and the Complete XML) only
    assert info.hashes["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    back = tmp_path / "back"
    remote.get("u.pth", back)
    assert back.read_bytes() == src.read_bytes()


def test_a_held_part_with_other_bytes_is_sent_again(seaweedfs, fault_proxy, tmp_path):
    settings, src, journal = _stopped_upload(seaweedfs, fault_proxy, tmp_path, 9, failing_part=2)
    header, journaled = journal.load()
    other = random.Random(99).randbytes(PART)  # on the server as part 2, but not our part 2
    seaweedfs.client().upload_part(
        Bucket=seaweedfs.bucket,
        Key=header.key,
        UploadId=header.upload_id,
        PartNumber=2,
        Body=other,
        ChecksumCRC32=crc32_b64(zlib.crc32(other)),
    )
    fault_proxy.clear()
    remote = open_provider("r", settings, state_dir=tmp_path / "st")
    info = remote.put("u.pth", src)
    resent = (3 - len(journaled)) * PART  # part 2, and part 3 if the 503 stopped it too
    assert resent <= fault_proxy.body_bytes < resent + 4096
    assert info.hashes["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    back = tmp_path / "back"
    remote.get("u.pth", back)
    assert back.read_bytes() == src.read_bytes()
