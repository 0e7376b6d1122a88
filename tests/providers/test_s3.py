"""S3-specific behaviour on real servers: errors at the edge, faults on the wire (through the
fault proxy in front of SeaweedFS), server-verified part checksums, journals and orphans."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers import open_provider
from providers.errors import ConfigError, IntegrityError, NotFound
from providers.s3.multipart import UploadJournal
from providers.s3.parts import MAX_PART, MAX_PARTS, MIN_PART, crc32_b64, part_size_for
from tests.providers.helpers import NO_WAIT, make_file
from tests.servers.seaweed import PART

RETRY = {**NO_WAIT, "attempts": 6}


def open_remote(settings, tmp_path, **extra):
    return open_provider("r", {**settings, **extra}, state_dir=tmp_path / "state")


def test_part_size_stays_within_s3_limits():
    assert part_size_for(10, 8 << 20) == 8 << 20
    assert part_size_for(10, 1 << 20) == MIN_PART  # below S3's minimum: raised
    huge = 200 * 1024**3
    part = part_size_for(huge, 8 << 20)
    assert -(-huge // part) <= MAX_PARTS
    assert part_size_for(60 * 1024**4, 8 << 20) == MAX_PART


def test_part_checksum_setting_is_validated(seaweedfs):
    with pytest.raises(ConfigError, match="part_checksum must be crc32 or md5, not 'sha1'"):
        open_provider("r", {**seaweedfs.settings(), "part_checksum": "sha1"})
    assert (
        open_provider(
            "r", {**seaweedfs.settings(), "part_checksum": "MD5"}
        ).inner.config.part_checksum
        == "md5"
    )


def test_crc32_header_value_is_what_botocore_would_send():
    from botocore.httpchecksum import Crc32Checksum

    data = random.Random(3).randbytes(100_000)
    reference = Crc32Checksum()
    reference.update(data)
    assert crc32_b64(zlib.crc32(data)) == reference.b64digest()


def test_boto3_is_imported_only_when_an_s3_remote_opens(tmp_path):
    code = (
        "import sys, providers\n"
        f"providers.open_provider('x', {{'type': 'local', 'path': {str(tmp_path / 'r')!r}}})\n"
        "print('boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_sha256_metadata_and_md5_etag(seaweedfs, tmp_path):
    remote = open_remote(seaweedfs.settings(), tmp_path)
    small, big = tmp_path / "small", tmp_path / "big"
    make_file(small, 1000)
    sha_big = make_file(big, 2 * PART + 1)["sha256"]
    remote.put("small", small)
    remote.put("big", big)
    raw = seaweedfs.client().head_object(Bucket=seaweedfs.bucket, Key=remote.inner._key("big"))
    assert raw["Metadata"]["sha256"] == sha_big
    assert remote.stat("small").hashes["md5"] == hashlib.md5(small.read_bytes()).hexdigest()
    # A multipart ETag is not an md5 and must never be reported as one.
    assert "md5" not in remote.stat("big").hashes
    assert remote.stat("big").hashes["sha256"] == sha_big


def test_part_size_and_rclone_md5(seaweedfs, tmp_path):
    """The first part's size of a multipart object, where ETags are md5-based; the whole file's
    md5 rclone keeps in x-amz-meta-md5chksum (base64), from a stat."""
    import base64

    remote = open_remote(seaweedfs.settings(), tmp_path)
    big = tmp_path / "big"
    md5 = make_file(big, 2 * PART + 1)["md5"]
    remote.put("big", big)
    assert remote.capabilities.part_size is not None
    assert remote.capabilities.part_size("big") == PART
    kms = open_remote(seaweedfs.settings(), tmp_path, sse="aws:kms")
    assert kms.capabilities.part_size is None  # its ETags are no md5s: nothing to recompute

    client, bucket = seaweedfs.client(), seaweedfs.bucket
    data = big.read_bytes()

    def upload_in_parts(name: str, meta: dict) -> None:
        """As rclone does for a large file: multipart, the md5 in the metadata."""
        key = remote.inner._key(name)
        upload = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=meta)
        parts = []
        for n, at in enumerate(range(0, len(data), PART), start=1):
            body = data[at : at + PART]
            r = client.upload_part(
                Bucket=bucket, Key=key, PartNumber=n, UploadId=upload["UploadId"], Body=body
            )
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        done = {"Parts": parts}
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload=done
        )

    upload_in_parts("rclone", {"md5chksum": base64.b64encode(bytes.fromhex(md5)).decode()})
    upload_in_parts("bad", {"md5chksum": "not base64!"})
    upload_in_parts("short", {"md5chksum": base64.b64encode(b"short").decode()})
    assert remote.stat("rclone").hashes == {"md5": md5}
    assert remote.stat("rclone").etag.endswith("-3")
    assert remote.stat("bad").hashes == remote.stat("short").hashes == {}
    assert [o.hashes for o in remote.list("rclone")] == [{}]  # listings carry no metadata


def test_missing_bucket_says_what_to_fix(seaweedfs, tmp_path):
    remote = open_remote(seaweedfs.settings(bucket="no-such-bucket-here"), tmp_path)
    src = tmp_path / "s"
    make_file(src, 10)
    # SeaweedFS creates a bucket on first PUT for an admin identity; listing is where it shows.
    with pytest.raises(NotFound, match="bucket 'no-such-bucket-here' does not exist: create it"):
        list(remote.list())


def test_missing_bucket_on_put_says_what_to_fix(s3_moto_settings, tmp_path):
    remote = open_remote({**s3_moto_settings, "bucket": "not-there"}, tmp_path)
    src = tmp_path / "s"
    make_file(src, 10)
    with pytest.raises(
        NotFound, match="bucket 'not-there' does not exist: create it or fix bucket:"
    ):
        remote.put("x", src)


def test_transient_faults_on_upload_still_complete(seaweedfs, fault_proxy, tmp_path):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    remote = open_remote(settings, tmp_path, retry=RETRY)
    src = tmp_path / "s"
    sha = make_file(src, 4 * PART + 3)["sha256"]
    fault_proxy.add("503", method="PUT", every=2, limit=1)
    fault_proxy.add("slowdown", method="PUT", every=3, limit=1)
    fault_proxy.add("reset", method="PUT", every=4, limit=1)
    fault_proxy.add("500", method="POST", limit=1)  # create or complete
    remote.put("m.pth", src)
    assert fault_proxy.faults == 4
    # Resumed from the journal: parts already accepted were not sent again.
    assert fault_proxy.body_bytes < 2 * src.stat().st_size
    direct = open_remote(seaweedfs.settings(prefix=settings["prefix"]), tmp_path)
    direct.get("m.pth", tmp_path / "back", expected_hashes={"sha256": sha})
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def test_transient_faults_on_download_still_complete(seaweedfs, fault_proxy, tmp_path):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    remote = open_remote(settings, tmp_path, retry=RETRY)
    src = tmp_path / "s"
    make_file(src, 3 * PART + 5)
    remote.put("d.pth", src)
    fault_proxy.clear()
    fault_proxy.add("cut", method="GET", every=2, limit=2)
    fault_proxy.add("503", method="GET", limit=1)
    fault_proxy.add("reset", method="HEAD", limit=1)
    out = tmp_path / "out"
    remote.get("d.pth", out / "d.pth")
    assert (out / "d.pth").read_bytes() == src.read_bytes()
    assert fault_proxy.faults == 4
    assert [p.name for p in out.iterdir()] == ["d.pth"]
    # Ranges finished before a failure were kept for the next attempt, not fetched again.
    assert fault_proxy.response_bytes < src.stat().st_size + 2 * PART


@pytest.mark.parametrize("checksum", ["crc32", "md5"])
@pytest.mark.parametrize("size", [1000, 2 * PART + 9], ids=["single-put", "multipart"])
def test_corrupted_request_is_rejected_by_the_server(
    seaweedfs, fault_proxy, tmp_path, checksum, size
):
    # The proxy flips a body byte on the wire; only the part checksum can catch it (the payload is
    # not signed), and SeaweedFS really checks it: the object is absent, never wrong.
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    remote = open_remote(settings, tmp_path, part_checksum=checksum)
    src = tmp_path / "s"
    sha = make_file(src, size)["sha256"]
    fault_proxy.add("corrupt", method="PUT", path_contains="partNumber=2" if size > PART else None)
    with pytest.raises(IntegrityError, match="rejected a checksum"):
        remote.put("c.pth", src)
    assert fault_proxy.faults == 1
    with pytest.raises(NotFound):
        remote.stat("c.pth")
    remote.put("c.pth", src)  # the next call resumes and sends part 2 intact
    direct = open_remote(seaweedfs.settings(prefix=settings["prefix"]), tmp_path / "d")
    direct.get("c.pth", tmp_path / "back", expected_hashes={"sha256": sha})
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def _interrupted_upload(seaweedfs, fault_proxy, tmp_path, checksum: str):
    """An upload with part checksum ``checksum`` stopped after parts 1-2 of 3."""
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    remote = open_remote(settings, tmp_path, retry={"attempts": 1}, part_checksum=checksum)
    src = tmp_path / "s"
    make_file(src, 3 * PART, seed=5)
    fault_proxy.add("503", method="PUT", path_contains="partNumber=3", limit=1)
    with pytest.raises(Exception, match="busy or failing"):
        remote.put("old.pth", src)
    key = remote.inner._key("old.pth")
    journal = UploadJournal(tmp_path / "state" / "uploads", seaweedfs.bucket, key)
    header, parts = journal.load()
    assert header is not None and header.checksum == "md5" and sorted(parts) == [1, 2]
    return settings, src, key, header


def test_md5_journal_resumes_with_md5(seaweedfs, fault_proxy, tmp_path):
    settings, src, _, _ = _interrupted_upload(seaweedfs, fault_proxy, tmp_path, "md5")
    sent_before = fault_proxy.body_bytes
    remote = open_remote(settings, tmp_path, part_checksum="md5")
    info = remote.put("old.pth", src)
    # Only part 3 was sent (plus the small CompleteMultipartUpload XML).
    assert PART <= fault_proxy.body_bytes - sent_before < PART + 4096
    assert info.hashes["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_md5_journal_is_aborted_and_restarted_with_crc32(seaweedfs, fault_proxy, tmp_path):
    settings, src, key, header = _interrupted_upload(seaweedfs, fault_proxy, tmp_path, "md5")
    sent_before = fault_proxy.body_bytes
    remote = open_remote(settings, tmp_path)  # default: crc32
    info = remote.put("old.pth", src)
    assert fault_proxy.body_bytes - sent_before >= 3 * PART  # started afresh, not mixed
    assert info.hashes["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    listing = seaweedfs.client().list_multipart_uploads(Bucket=seaweedfs.bucket, Prefix=key)
    assert header.upload_id not in [u["UploadId"] for u in listing.get("Uploads", [])]
    back = tmp_path / "back"
    remote.get("old.pth", back)
    assert back.read_bytes() == src.read_bytes()


def test_changed_file_aborts_the_orphaned_upload(seaweedfs, fault_proxy, tmp_path):
    settings = seaweedfs.settings(endpoint_url=fault_proxy.url)
    remote = open_remote(settings, tmp_path, retry={"attempts": 1})
    src = tmp_path / "s"
    make_file(src, 3 * PART, seed=1)
    fault_proxy.add("503", method="PUT", path_contains="partNumber=3", limit=1)
    with pytest.raises(Exception, match="busy or failing"):
        remote.put("o.pth", src)
    key = remote.inner._key("o.pth")
    header, parts = UploadJournal(tmp_path / "state" / "uploads", seaweedfs.bucket, key).load()
    assert header is not None and parts
    client = seaweedfs.client()

    def open_uploads() -> list[str]:
        listing = client.list_multipart_uploads(Bucket=seaweedfs.bucket, Prefix=key)
        return [u["UploadId"] for u in listing.get("Uploads", []) if u["Key"] == key]

    assert header.upload_id in open_uploads()
    sha = make_file(src, 3 * PART, seed=2)["sha256"]  # a new checkpoint under the same name
    remote.put("o.pth", src)
    assert remote.stat("o.pth").hashes["sha256"] == sha
    assert header.upload_id not in open_uploads()


def test_abort_incomplete_uploads(seaweedfs, fault_proxy, tmp_path):
    remote = open_remote(seaweedfs.settings(endpoint_url=fault_proxy.url), tmp_path)
    src = tmp_path / "s"
    make_file(src, 2 * PART + 1)
    fault_proxy.add("corrupt", method="PUT", path_contains="partNumber=1", limit=1)
    with pytest.raises(IntegrityError):
        remote.put("a.pth", src)
    assert remote.capabilities.abort_incomplete_uploads() == 1
    assert list((tmp_path / "state" / "uploads").iterdir()) == []


def test_copy_above_the_single_copy_limit_uses_upload_part_copy(seaweedfs, tmp_path):
    from providers.s3.bucket import Bucket
    from providers.s3.errors import s3_errors
    from providers.s3.server_copy import CopyJob, copy_object

    remote = open_remote(seaweedfs.settings(), tmp_path)
    src = tmp_path / "s"
    sha = make_file(src, 2 * PART + 77)["sha256"]
    remote.put("orig.pth", src)
    inner = remote.inner
    bucket = Bucket(inner.client, inner.bucket, lambda what: s3_errors("r", inner.bucket, what))
    job = CopyJob(
        inner._key("orig.pth"), inner._key("copy.pth"), src.stat().st_size, {"sha256": sha}
    )
    copy_object(
        bucket,
        job,
        create_args={},
        part_size=PART,
        concurrency=2,
        copy_limit=0,  # force the UploadPartCopy path S3 needs above 5 GiB
    )
    info = remote.stat("copy.pth")
    assert info.hashes["sha256"] == sha
    assert info.etag.endswith("-3")  # really assembled from three copied parts
    remote.get("copy.pth", tmp_path / "back", expected_hashes={"sha256": sha})
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


@given(size=st.integers(0, 5 * 1024**4), chunk=st.integers(1, 6 * 1024**3))
def test_part_size_always_valid(size, chunk):
    part = part_size_for(size, chunk)
    assert MIN_PART <= part <= MAX_PART
    assert -(-size // part) <= MAX_PARTS  # any object up to S3's 5 TiB maximum fits


def test_s3_settings_are_the_keys_checked_at_config_load():
    import dataclasses

    from providers.config import BACKEND_KEYS
    from providers.s3.config import S3Settings

    assert {f.name for f in dataclasses.fields(S3Settings)} == set(BACKEND_KEYS["s3"].allowed)
