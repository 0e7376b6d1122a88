"""S3 ETag arithmetic: what an ETag says about the bytes, and how to recompute one. Pure, no I/O.

A single-part upload's ETag is the md5 of the bytes (32 hex digits). A multipart upload's is
``<md5 of the concatenated binary md5s of the parts>-<number of parts>``: it can be recomputed
from the bytes only with the part size the uploader used (every part that size, the last one
smaller or equal). aws cli and boto3 use 8 MiB parts by default, rclone 5 MiB, s5cmd 50 MiB; all
of them raise it for large files. For ``size`` bytes in ``n`` parts only sizes ``p`` with
``(n - 1) * p < size <= n * p`` are possible, which leaves few candidates to try.
(Server-side encryption with KMS keys gives ETags that are not md5-based: none of this holds.)
"""

from __future__ import annotations

import hashlib
import re

MIB = 1024 * 1024
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART = re.compile(r"^([0-9a-f]{32})-([1-9][0-9]{0,4})$")
# Part sizes the common uploaders use: aws cli / boto3 (8 MiB), rclone (5 MiB), s5cmd (50 MiB),
# and round sizes people configure.
COMMON_PART_SIZES = tuple(
    n * MIB for n in (5, 8, 10, 15, 16, 25, 32, 50, 64, 100, 128, 256, 512, 1024)
)


def _bare(etag: str) -> str:
    return etag.strip().strip('"').lower()


def md5_of_etag(etag: str | None) -> str | None:
    """The md5 a single-part ETag is, or None when the ETag is not a plain md5."""
    if not etag:
        return None
    bare = _bare(etag)
    return bare if _MD5.match(bare) else None


def parse_multipart(etag: str | None) -> tuple[str, int] | None:
    """(hex digest, number of parts) of a multipart ETag, or None when it is not one."""
    if not etag:
        return None
    match = _MULTIPART.match(_bare(etag))
    return (match.group(1), int(match.group(2))) if match else None


def parts_for(size: int, part_size: int) -> int:
    """How many parts ``size`` bytes make in ``part_size`` parts (an empty file is one part)."""
    return max(1, -(-size // part_size))


def fits(size: int, parts: int, part_size: int) -> bool:
    """Whether an upload of ``size`` bytes in ``part_size`` parts has exactly ``parts`` parts."""
    return part_size > 0 and parts_for(size, part_size) == parts


def candidate_part_sizes(size: int, parts: int, first_part: int | None = None) -> list[int]:
    """The part sizes worth trying to reproduce a multipart ETag of ``parts`` parts over ``size``
    bytes, most likely first: the first part's size if the server told it, the common sizes,
    then ``size / parts`` rounded up (exactly, and to whole MiB). Only sizes that give exactly
    ``parts`` parts are kept."""
    even = -(-size // parts)
    ordered = [first_part or 0, *COMMON_PART_SIZES, -(-even // MIB) * MIB, even]
    out: list[int] = []
    for p in ordered:
        if p not in out and fits(size, parts, p):
            out.append(p)
    return out


class MultipartEtag:
    """A multipart ETag computed from bytes fed in order (``update``) with a fixed part size."""

    def __init__(self, part_size: int) -> None:
        if part_size <= 0:
            raise ValueError(f"part size must be positive, got {part_size}")
        self.part_size = part_size
        self._digests: list[bytes] = []
        self._part = hashlib.md5()
        self._filled = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self.part_size - self._filled)
            self._part.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.part_size:
                self._digests.append(self._part.digest())
                self._part, self._filled = hashlib.md5(), 0

    def hexdigest(self) -> str:
        """``<hex>-<parts>``; a trailing partial part counts as the last part."""
        digests = list(self._digests)
        if self._filled or not digests:
            digests.append(self._part.digest())
        return of_part_digests(digests)


def of_part_digests(digests: list[bytes]) -> str:
    """The multipart ETag of parts whose binary md5 digests are ``digests``, in order."""
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def same_etag(a: str | None, b: str | None) -> bool:
    return bool(a and b) and _bare(a or "") == _bare(b or "")


def describe_part_size(part_size: int) -> str:
    """``8 MiB`` for whole MiB sizes, the byte count otherwise."""
    return f"{part_size // MIB} MiB" if part_size % MIB == 0 else f"{part_size} bytes"
