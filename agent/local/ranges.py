"""The range hashes of local content (providers.ranges), kept by sha256 in the state dir.

Range hashes are a function of the content, so they are stored by its sha256
(``.model-safety/ranges/<sha256>.json``): every name holding those bytes shares them, and a file
renamed or copied needs no new pass. They are computed in the same read as the sha256 when a
content is first seen (a backup's copy, the first hash of a changed current file); a push that
finds none reads the file once.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from agent.local.hashing import atomic_write_bytes
from providers.ranges import RangeHashes, ranges_of_file

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{64}$")


class LocalRanges:
    DIR = "ranges"

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / self.DIR

    def _path(self, sha256: str) -> Path | None:
        return self.dir / f"{sha256}.json" if _SHA.match(sha256) else None

    def get(self, sha256: str, size: int) -> RangeHashes | None:
        """The stored range hashes of ``sha256`` (``size`` bytes); None when none are stored or
        they are unreadable or do not fit the size (then the caller computes them again)."""
        path = self._path(sha256)
        if path is None:
            return None
        try:
            ranges = RangeHashes.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None
        return ranges if ranges is not None and ranges.fits(size) else None

    def put(self, sha256: str, ranges: RangeHashes) -> None:
        path = self._path(sha256)
        if path is None or path.exists():
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            data = json.dumps(ranges.to_json()).encode("utf-8")
            atomic_write_bytes(path, data, point="ranges-write")
        except OSError as exc:  # a read-only state dir costs a re-read at the next push
            log.info("cannot keep the range hashes of %s: %s", sha256[:12], exc)

    def put_serialised(self, sha256: str, text: str) -> None:
        """``put`` from RangeHasher.hexdigest()'s form (a hashing pass's table of digests)."""
        ranges = RangeHashes.from_json(json.loads(text))
        if ranges is not None:
            self.put(sha256, ranges)

    def keep_only(self, wanted: set[str]) -> int:
        """Remove the range hashes of every content not in ``wanted`` (a pruned version's, a
        current file's older content); returns how many. They are only a cache: a content that
        comes back has them computed again in its first read."""
        removed = 0
        for path in self.dir.glob("*.json") if self.dir.is_dir() else ():
            if _SHA.match(path.stem) and path.stem not in wanted:
                try:
                    path.unlink()
                    removed += 1
                except OSError as exc:
                    log.info("cannot remove %s: %s", path, exc)
        return removed

    def of(self, path: Path, sha256: str) -> RangeHashes:
        """The range hashes of ``path``, whose content is ``sha256``: stored, else read once."""
        size = path.stat().st_size
        found = self.get(sha256, size)
        if found is None:
            found = ranges_of_file(path)
            self.put(sha256, found)
        return found
