"""The ETag arithmetic against values computed here with hashlib from known part sizes."""

from __future__ import annotations

import hashlib

import pytest

from agent.rules.etag import (
    MIB,
    MultipartEtag,
    candidate_part_sizes,
    describe_part_size,
    fits,
    md5_of_etag,
    of_part_digests,
    parse_multipart,
    same_etag,
)


def expected_etag(data: bytes, part_size: int) -> str:
    """What S3 reports for ``data`` uploaded in ``part_size`` parts, spelled out."""
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


DATA = bytes(range(256)) * 4099  # 1,049,344 bytes: not a multiple of any part size below


@pytest.mark.parametrize("part_size", [1000, 4096, 100_000, 262_144, 524_288, len(DATA)])
@pytest.mark.parametrize("feed", [777, 65_536, len(DATA)])
def test_multipart_etag_matches_the_spelled_out_formula(part_size, feed):
    etag = MultipartEtag(part_size)
    for at in range(0, len(DATA), feed):
        etag.update(DATA[at : at + feed])
    assert etag.hexdigest() == expected_etag(DATA, part_size)


def test_byte_by_byte_feeding_crosses_part_boundaries():
    data = DATA[:5000]
    etag = MultipartEtag(7)
    for i in range(len(data)):
        etag.update(data[i : i + 1])
    assert etag.hexdigest() == expected_etag(data, 7)


def test_a_known_vector():
    # three parts: 5 MiB of "a", 5 MiB of "b", 2 bytes of "c"
    data = b"a" * 5 * MIB + b"b" * 5 * MIB + b"cc"
    digests = [hashlib.md5(b"a" * 5 * MIB).digest(), hashlib.md5(b"b" * 5 * MIB).digest()]
    digests.append(hashlib.md5(b"cc").digest())
    want = hashlib.md5(b"".join(digests)).hexdigest() + "-3"
    etag = MultipartEtag(5 * MIB)
    etag.update(data)
    assert etag.hexdigest() == want == of_part_digests(digests)
    # an exact multiple of the part size has no empty trailing part
    exact = MultipartEtag(5 * MIB)
    exact.update(data[: 10 * MIB])
    assert exact.hexdigest() == of_part_digests(digests[:2])
    assert exact.hexdigest().endswith("-2")


def test_the_wrong_part_size_gives_another_etag():
    right = MultipartEtag(300_000)
    wrong = MultipartEtag(262_144)
    right.update(DATA)
    wrong.update(DATA)
    assert right.hexdigest() != wrong.hexdigest()
    assert right.hexdigest().endswith("-4") and wrong.hexdigest().endswith("-5")


def test_parsing_etags():
    md5 = hashlib.md5(b"x").hexdigest()
    assert md5_of_etag(f'"{md5}"') == md5
    assert md5_of_etag(md5.upper()) == md5
    assert md5_of_etag(f"{md5}-2") is None
    assert md5_of_etag(None) is None
    assert parse_multipart(f'"{md5}-12"') == (md5, 12)
    assert parse_multipart(md5) is None
    assert parse_multipart(f"{md5}-0") is None
    assert parse_multipart("W/not-an-etag") is None
    assert same_etag(f'"{md5}-3"', f"{md5}-3") and not same_etag(None, None)


def test_candidates_give_exactly_the_number_of_parts():
    size = 12 * 1000 * 1000  # ~11.4 MiB
    assert candidate_part_sizes(size, 3) == [5 * MIB, 4 * MIB, 4_000_000]
    # the server's answer comes first, when it fits
    assert candidate_part_sizes(size, 3, first_part=4_200_000)[0] == 4_200_000
    assert 7 * MIB not in candidate_part_sizes(size, 3, first_part=7 * MIB)  # gives 2 parts
    # aws cli's 8 MiB and s5cmd's 50 MiB are found for files they split
    assert 8 * MIB in candidate_part_sizes(100 * MIB + 1, 13)
    assert 50 * MIB in candidate_part_sizes(120 * MIB, 3)
    for size, parts in [(1, 1), (10 * MIB, 2), (999_999_999, 7), (5 * MIB * 10_000, 10_000)]:
        found = candidate_part_sizes(size, parts)
        assert found, (size, parts)
        assert all(fits(size, parts, p) for p in found)
        assert len(found) == len(set(found))


def test_part_size_wording():
    assert describe_part_size(8 * MIB) == "8 MiB"
    assert describe_part_size(4_000_000) == "4000000 bytes"
