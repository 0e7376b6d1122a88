"""Which object already on a remote a new file is best assembled from (a delta push).

A fine-tune that changes some tensors leaves the others byte-identical at identical offsets, so
two versions of a model share most of their ranges (providers.ranges). For each file to upload,
the candidate sharing the most bytes at the same offsets is its source: those ranges are copied
on the server, the rest sent. Pure: the executor (agent/remote/push.py) gathers the range hashes
and carries the choice out through ``Capabilities.put_reusing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from providers.ranges import RangeHashes


@dataclass(frozen=True)
class DeltaSource:
    name: str
    ranges: frozenset[int]  # indexes of the ranges the source holds at the same offsets
    bytes_reused: int
    ranges_total: int


def best_source(
    local: RangeHashes, size: int, candidates: Mapping[str, tuple[RangeHashes, int]]
) -> DeltaSource | None:
    """The candidate (name -> its range hashes and size) sharing the most bytes with a file of
    ``size`` bytes and range hashes ``local``; None when none shares a range. Equal digests
    mean equal bytes of equal length, so a shorter last range only matches its like."""
    best: DeltaSource | None = None
    for name in sorted(candidates):
        theirs, _their_size = candidates[name]
        same = local.same_as(theirs)
        reused = sum(local.span(i, size)[1] for i in same)
        if reused and (best is None or reused > best.bytes_reused):
            best = DeltaSource(name, frozenset(same), reused, len(local))
    return best
