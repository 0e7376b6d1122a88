"""A download given the range hashes recorded at push checks each range as it arrives, against
those hashes, instead of hashing the whole file after it: on SeaweedFS, through the retry layer
as the agent calls it. The hashes are what decides: bytes that hash right as a whole but not
range by range never land, and a range an earlier attempt finished is read back and checked."""

from __future__ import annotations

import dataclasses
import hashlib
import random

import pytest

from providers import open_provider
from providers.errors import IntegrityError
from providers.ranges import DIGEST, RangeHasher, ranges_of_file
from tests.providers.helpers import NO_WAIT

RANGE = 1 << 20  # small ranges: several per file, files of a few MiB


@pytest.fixture
def remote(seaweedfs, tmp_path):
    settings = seaweedfs.settings(retry=NO_WAIT, max_request_concurrency=2)
    provider = open_provider("r", settings, state_dir=tmp_path / "state")
    yield provider
    provider.close()


def pushed(remote, tmp_path, size: int):  # type: ignore[no-untyped-def]
    src = tmp_path / "src.pth"
    src.write_bytes(random.Random(size).randbytes(size))
    remote.put("m.pth", src)
    return src, hashlib.sha256(src.read_bytes()).hexdigest(), ranges_of_file(src, RANGE)


# above the multipart threshold (5 MiB), as a model is; and a single-part object
@pytest.mark.parametrize(
    "size",
    [7 * RANGE, 7 * RANGE + 12345, 3 * RANGE + 5],
    ids=["whole", "short-last", "single-part"],
)
def test_a_download_checked_range_by_range_lands_byte_identical(remote, tmp_path, size):
    src, sha, ranges = pushed(remote, tmp_path, size)
    dest = tmp_path / "out" / "m.pth"
    got: list[int] = []
    remote.get(
        "m.pth", dest, expected_hashes={"sha256": sha}, expected_ranges=ranges, progress=got.append
    )
    assert dest.read_bytes() == src.read_bytes()
    assert sum(got) == size
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.pth"]


def test_bytes_that_differ_from_one_range_hash_never_land(remote, tmp_path):
    """The whole file's sha256 is right, one recorded range hash is not (a catalog and an object
    that disagree): the ranges are the check, so the download is refused, naming the bytes."""
    _, sha, ranges = pushed(remote, tmp_path, 7 * RANGE)
    digests = bytearray(ranges.digests)
    digests[2 * DIGEST] ^= 0xFF
    wrong = dataclasses.replace(ranges, digests=bytes(digests))
    dest = tmp_path / "out" / "m.pth"
    with pytest.raises(IntegrityError, match=f"bytes {2 * RANGE}-{3 * RANGE - 1} differ"):
        remote.get("m.pth", dest, expected_hashes={"sha256": sha}, expected_ranges=wrong)
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == []  # no temp left either


def test_ranges_too_large_to_fetch_in_parallel_fall_back_to_the_whole_file_hash(remote, tmp_path):
    src, sha, _ = pushed(remote, tmp_path, 7 * RANGE + 5)
    hasher = RangeHasher(64 * RANGE)  # one range per 64 MiB: the download would be one GET...
    hasher.update(b"not these bytes")  # ...and it is wrong, so using it would refuse the file
    dest = tmp_path / "out" / "m.pth"
    remote.get("m.pth", dest, expected_hashes={"sha256": sha}, expected_ranges=hasher.result())
    assert dest.read_bytes() == src.read_bytes()
