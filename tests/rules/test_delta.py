"""The range-hash format and the choice of a delta source, on bytes made here."""

from __future__ import annotations

import os

from agent.rules.delta import best_source
from providers.ranges import RangeHasher, RangeHashes, range_digest, ranges_of_file

SIZE = 1024  # small ranges: the arithmetic is the same at 8 MiB


def ranges(data: bytes, size: int = SIZE) -> RangeHashes:
    h = RangeHasher(size)
    for i in range(0, len(data), 300):  # chunks that straddle range boundaries
        h.update(data[i : i + 300])
    return h.result()


def test_ranges_cut_the_file_at_fixed_offsets_whatever_the_chunks():
    data = os.urandom(3 * SIZE + 17)
    r = ranges(data)
    assert len(r) == 4 and r.fits(len(data)) and not r.fits(len(data) + SIZE)
    for i in range(4):
        start, length = r.span(i, len(data))
        assert r[i] == range_digest(data[start : start + length])
    assert ranges(b"").fits(0) and len(ranges(b"")) == 0


def test_serialised_form_round_trips_and_rejects_what_it_cannot_trust(tmp_path):
    data = os.urandom(5 * SIZE)
    r = ranges(data)
    assert RangeHashes.from_json(r.to_json()) == r
    (tmp_path / "f").write_bytes(data)
    assert ranges_of_file(tmp_path / "f", SIZE) == r
    assert RangeHashes.from_json({**r.to_json(), "algo": "sha1"}) is None
    assert RangeHashes.from_json({**r.to_json(), "hashes": "not base64!"}) is None
    assert RangeHashes.from_json({**r.to_json(), "hashes": "AAAA"}) is None  # not 16-byte digests
    assert RangeHashes.from_json(None) is None


def test_the_source_sharing_most_bytes_at_the_same_offsets_is_chosen():
    base = os.urandom(8 * SIZE)
    tuned = base[: 6 * SIZE] + os.urandom(2 * SIZE)  # the last 2 "layers" changed
    shifted = os.urandom(10) + base[:-10]  # same bytes at other offsets: no use
    older = base[: 3 * SIZE] + os.urandom(5 * SIZE)
    cands = {n: (ranges(d), len(d)) for n, d in [("v1", base), ("v0", older), ("x", shifted)]}
    best = best_source(ranges(tuned), len(tuned), cands)
    assert best is not None and best.name == "v1"
    assert best.ranges == frozenset(range(6)) and best.bytes_reused == 6 * SIZE
    assert best.ranges_total == 8
    assert best_source(ranges(os.urandom(8 * SIZE)), 8 * SIZE, cands) is None
    # another range size is another format: never matched
    assert best_source(ranges(tuned, 512), len(tuned), cands) is None


def test_a_shorter_last_range_matches_only_its_like():
    base = os.urandom(2 * SIZE + 100)
    longer = base + b"x"
    best = best_source(ranges(longer), len(longer), {"v": (ranges(base), len(base))})
    assert best is not None and best.ranges == frozenset({0, 1})
