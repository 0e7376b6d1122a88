"""A torch-free gate that refuses early, in the caller's process, what is not in the form
``torch.save`` or safetensors writes. It never accepts: a file it lets through still goes to the
confined checker (agent.checks.child), whose answer is the verdict.

The zip central directory is parsed here from the raw bytes, not with ``zipfile``: ``zipfile``
cuts a name at its first NUL, and torch's reader and ``zipfile`` already disagree on such
archives. What ``torch.save`` writes, and so what passes:

- the archive starts at byte 0 (nothing before it) and its central directory is where the end
  record says;
- every member is stored (uncompressed), unencrypted, and its local header repeats its name;
- member names are unique under case folding (torch's lookup ignores case), have no NUL,
  backslash, ``..`` or leading ``/``, and share one top-level folder holding ``data.pkl``;
- members do not overlap and lie inside the file;
- no ``constants.pkl`` (a TorchScript archive, which the safe loader refuses).

Reading is bounded: at most 64 KiB for the end record, and a central directory of at most 64 MiB.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"
SAFETENSORS_EXT = ".safetensors"
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
MAX_MEMBERS = 1_000_000
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"


class Refused(Exception):
    """The file is not a checkpoint in the form torch or safetensors writes; says why."""


@dataclass(frozen=True)
class Member:
    name: str
    data_offset: int  # where the member's bytes start in the file
    size: int


@dataclass(frozen=True)
class Shape:
    """What the gate saw: the format, and for a torch zip its members."""

    format: str  # "torch-zip" | "torch-legacy" | "safetensors"
    members: tuple[Member, ...] = ()

    def data_records(self) -> dict[int, Member]:
        """data_offset -> member, for the ``<archive>/data/<key>`` records."""
        return {m.data_offset: m for m in self.members if m.name.split("/")[-2:-1] == ["data"]}


def inspect(path: Path, *, safetensors: bool | None = None) -> Shape:
    """The file's shape, or Refused. ``safetensors``: the format when the name does not say."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if size == 0:
                raise Refused("empty file")
            if safetensors if safetensors is not None else path.suffix == SAFETENSORS_EXT:
                return _safetensors(fh, size, head)
            if head[:4] == ZIP_MAGIC:
                return Shape("torch-zip", _zip_members(fh, size))
    except OSError as exc:
        raise Refused(f"cannot read it: {exc.strerror or exc}") from None
    if _looks_like_zip_inside(path, size):
        raise Refused("bytes before the zip archive: not a file torch.save wrote")
    return Shape("torch-legacy")


def _safetensors(fh, size: int, head: bytes) -> Shape:  # type: ignore[no-untyped-def]
    if len(head) < 8:
        raise Refused("too short for a safetensors file")
    (length,) = struct.unpack("<Q", head)
    if length > MAX_SAFETENSORS_HEADER:
        raise Refused(f"its safetensors header claims {length} bytes (the limit is 100 MiB)")
    if length > size - 8:
        raise Refused("its safetensors header is longer than the file (truncated?)")
    if fh.read(1) != b"{":
        raise Refused("not a safetensors file: the header is not a JSON object")
    return Shape("safetensors")


def _looks_like_zip_inside(path: Path, size: int) -> bool:
    """A zip end record at the end of a file that does not start with a zip: junk prepended."""
    tail = min(size, 65536 + 22)
    with open(path, "rb") as fh:
        fh.seek(size - tail)
        return _EOCD in fh.read(tail)


def _zip_members(fh, size: int) -> tuple[Member, ...]:  # type: ignore[no-untyped-def]
    cd_offset, cd_size, count = _end_record(fh, size)
    if cd_size > MAX_CENTRAL_DIRECTORY or count > MAX_MEMBERS:
        raise Refused(f"its zip directory lists {count} members in {cd_size} bytes")
    fh.seek(cd_offset)
    cd = fh.read(cd_size)
    if len(cd) != cd_size:
        raise Refused("truncated: its zip directory runs past the end of the file")
    members, folded = [], set()
    pos = 0
    for _ in range(count):
        if cd[pos : pos + 4] != _CENTRAL:
            raise Refused("damaged zip directory")
        (flags, method, csize, usize, nlen, elen, clen) = struct.unpack(
            "<HHxxxxxxxxIIHHH", cd[pos + 8 : pos + 34]
        )
        (offset,) = struct.unpack("<I", cd[pos + 42 : pos + 46])
        raw = cd[pos + 46 : pos + 46 + nlen]
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
        pos += 46 + nlen + elen + clen
        usize, csize, offset = _zip64(extra, usize, csize, offset)
        name = _checked_name(raw)
        if method != 0:
            raise Refused(f"member {name} is compressed; torch.save stores every record as is")
        if flags & 1:
            raise Refused(f"member {name} is encrypted")
        if usize != csize:
            raise Refused(f"member {name} claims {usize} bytes stored in {csize}")
        key = name.casefold()
        if key in folded:
            raise Refused(f"two members named {name!r} (names differ only by case)")
        folded.add(key)
        members.append(_located(fh, size, name, raw, offset, usize))
    if pos != cd_size:
        raise Refused("damaged zip directory (its size does not add up)")
    _check_layout(members, cd_offset)
    return tuple(members)


def _end_record(fh, size: int) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    tail = min(size, 65536 + 22)
    fh.seek(size - tail)
    buf = fh.read(tail)
    at = buf.rfind(_EOCD)
    if at < 0 or at + 22 > len(buf):
        raise Refused("truncated or damaged: no zip end record")
    eocd_pos = size - tail + at
    count, cd_size, cd_offset = struct.unpack("<10xHII", buf[at : at + 20])
    loc = buf[at - 20 : at] if at >= 20 else b""
    if loc[:4] == _EOCD64_LOCATOR:  # torch writes one whatever the archive's size
        (eocd64_pos,) = struct.unpack("<Q", loc[8:16])
        fh.seek(eocd64_pos)
        rec = fh.read(56)
        if rec[:4] != _EOCD64 or len(rec) < 56:
            raise Refused("damaged zip64 end record")
        count, cd_size, cd_offset = struct.unpack("<QQQ", rec[32:56])
        eocd_pos = eocd64_pos
    elif 0xFFFFFFFF in (cd_size, cd_offset) or count == 0xFFFF:
        raise Refused("damaged zip64 end record")
    if cd_offset + cd_size != eocd_pos:
        raise Refused("bytes before the zip archive or inside its directory: not torch.save's")
    return cd_offset, cd_size, count


def _zip64(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[pos : pos + 4])
        body = extra[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if tag != 1:
            continue
        values = list(struct.unpack(f"<{len(body) // 8}Q", body[: len(body) // 8 * 8]))
        if usize == 0xFFFFFFFF and values:
            usize = values.pop(0)
        if csize == 0xFFFFFFFF and values:
            csize = values.pop(0)
        if offset == 0xFFFFFFFF and values:
            offset = values.pop(0)
    return usize, csize, offset


def _checked_name(raw: bytes) -> str:
    if b"\x00" in raw:
        raise Refused(f"a member name holds a NUL byte ({raw[:60]!r})")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"a member name is not UTF-8 ({raw[:60]!r})") from None
    parts = name.split("/")
    if "\\" in name or name.startswith("/") or ".." in parts or len(parts) < 2:
        raise Refused(f"member name {name[:80]!r} is not one torch.save writes")
    return name


def _located(fh, size: int, name: str, raw: bytes, offset: int, usize: int) -> Member:  # type: ignore[no-untyped-def]
    fh.seek(offset)
    local = fh.read(30)
    if len(local) < 30 or local[:4] != ZIP_MAGIC:
        raise Refused(f"member {name}: no local header where the directory says")
    method, nlen, elen = struct.unpack("<H", local[8:10])[0], *struct.unpack("<HH", local[26:30])
    if method != 0:
        raise Refused(f"member {name} is compressed; torch.save stores every record as is")
    if fh.read(nlen) != raw:
        raise Refused(f"member {name}: its local header names another file")
    start = offset + 30 + nlen + elen
    if start + usize > size:
        raise Refused(f"truncated: member {name} runs past the end of the file")
    return Member(name, start, usize)


def _check_layout(members: list[Member], cd_offset: int) -> None:
    tops = {m.name.split("/")[0] for m in members}
    if len(tops) != 1:
        raise Refused(f"members under {len(tops)} top-level folders; torch.save writes one")
    top = tops.pop()
    names = {m.name for m in members}
    if f"{top}/constants.pkl" in names:
        raise Refused("a TorchScript archive (torch.jit.save), not a state dict")
    if f"{top}/data.pkl" not in names:
        raise Refused("not a torch checkpoint (a zip archive without data.pkl)")
    spans = sorted((m.data_offset, m.data_offset + m.size, m.name) for m in members)
    if spans and spans[0][0] < 30:
        raise Refused("bytes before the zip archive: not a file torch.save wrote")
    for (_, end_a, a), (start_b, _, b) in itertools.pairwise(spans):
        if start_b < end_a:
            raise Refused(f"members {a} and {b} overlap")
    if spans and spans[-1][1] > cd_offset:
        raise Refused(f"member {spans[-1][2]} runs into the zip directory")
