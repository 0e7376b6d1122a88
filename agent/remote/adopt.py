"""Objects other tools put on a remote under our names (``aws s3 cp``, rclone, s5cmd): which check
their bytes can get, and whether one holds the same bytes as a local file.

Our own pushes store the whole file's sha256 with every object. An object another tool uploaded
has only what its backend vouches for: on S3 the md5 ETag of a single-part object, the md5 rclone
keeps in ``x-amz-meta-md5chksum`` for a multipart one, or else a multipart ETag, which is
recomputed from the bytes with the part size that reproduces it (agent.rules.etag); failing all
of those, only its size. A pull says per file which check it got, and a download whose
recomputed ETag does not match never lands. A push records an object whose checksum equals the
local file's in the remote catalog instead of sending the bytes again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import progress
from agent.local.hashing import fsync_dir, hash_file
from agent.rules.etag import (
    MultipartEtag,
    candidate_part_sizes,
    describe_part_size,
    md5_of_etag,
    parse_multipart,
    same_etag,
)
from agent.rules.push_plan import Action, RemoteFile, Step
from providers import ObjectInfo, Provider, fileio
from providers.base import ProgressFn
from providers.errors import IntegrityError

SIZE_ONLY = "size only"
READ = 8 * 1024 * 1024


def md5_source(info: ObjectInfo) -> str:
    """Where the md5 a backend holds for ``info`` comes from, as a person reads it."""
    md5 = info.hashes.get("md5")
    if md5 and md5 == md5_of_etag(info.etag):
        return "md5 ETag"
    if md5 and parse_multipart(info.etag):
        return "rclone md5chksum"  # the only md5 an S3 multipart object carries besides ours
    return "md5"


def held_checks(info: ObjectInfo, expected_sha256: str | None = None) -> list[str]:
    """The checks a download of ``info`` gets from the provider itself: every hash it knows."""
    checks = []
    if expected_sha256 or info.hashes.get("sha256"):
        checks.append("sha256")
    if info.hashes.get("md5"):
        checks.append(md5_source(info))
    return checks


def needs_recompute(provider: Provider, info: ObjectInfo, expected_sha256: str | None) -> bool:
    """Whether only a multipart ETag recomputed from the bytes can check ``info``'s download."""
    return (
        not held_checks(info, expected_sha256)
        and parse_multipart(info.etag) is not None
        and provider.capabilities.part_size is not None
    )


# -- reproducing a multipart ETag ------------------------------------------------------------------
def _etags_of(path: Path, part_sizes: Iterable[int], label: str) -> dict[int, str]:
    """The multipart ETag of ``path`` for each part size, in one read of the file."""
    hashers = {p: MultipartEtag(p) for p in part_sizes}
    if not hashers:
        return {}
    size = path.stat().st_size
    with progress.bar(label, size) as advance, open(path, "rb") as fh:
        while chunk := fh.read(READ):
            for h in hashers.values():
                h.update(chunk)
            if advance is not None:
                advance(len(chunk))
    return {p: h.hexdigest() for p, h in hashers.items()}


def reproducing_part_size(provider: Provider, key: str, info: ObjectInfo, path: Path) -> int | None:
    """The part size with which ``path``'s bytes give ``info``'s multipart ETag, or None. The
    size the server tells (its first part) is tried alone first; the usual sizes only if it says
    none or its answer does not reproduce the ETag."""
    parsed = parse_multipart(info.etag)
    part_size = provider.capabilities.part_size
    if parsed is None or part_size is None:
        return None
    size, parts = path.stat().st_size, parsed[1]
    told = part_size(key)
    first = [told] if told is not None and told in candidate_part_sizes(size, parts, told) else []
    rest = [p for p in candidate_part_sizes(size, parts) if p not in first]
    for batch in (first, rest):
        for p, etag in _etags_of(path, batch, f"checking {path.name}").items():
            if same_etag(etag, info.etag):
                return p
    return None


def multipart_label(part: int) -> str:
    return f"multipart ETag, {describe_part_size(part)} parts"


# -- pull ------------------------------------------------------------------------------------------
def fetch(
    provider: Provider,
    key: str,
    dest: Path,
    info: ObjectInfo,
    *,
    expected_sha256: str | None,
    progress_fn: ProgressFn | None = None,
) -> tuple[ObjectInfo, str]:
    """Download ``key`` to ``dest`` through ``provider.get`` and say which check its bytes got.
    ``info``: what the listing said (a stat is made when it lacks checksums). An object only a
    multipart ETag can check is downloaded to a hidden temp beside ``dest``, its ETag recomputed,
    and renamed into place only if it matches: otherwise IntegrityError, nothing at ``dest``."""
    expected = {"sha256": expected_sha256} if expected_sha256 else None
    if not held_checks(info, expected_sha256):
        info = provider.stat(key)  # listings carry no metadata (sha256, rclone's md5)
    if not needs_recompute(provider, info, expected_sha256):
        got = provider.get(key, dest, expected_hashes=expected, progress=progress_fn)
        return got, " + ".join(held_checks(got, expected_sha256)) or SIZE_ONLY
    tag = hashlib.sha256(f"{key}\0{info.etag}".encode()).hexdigest()[:12]
    # Deterministic, so an interrupted download resumes into it; the models dir's stale-temp
    # sweep removes one a killed run left.
    staging = dest.with_name(f".{dest.name}.{tag}.incomplete")
    try:
        got = provider.get(key, staging, progress=progress_fn)
        if held_checks(got):  # the object was replaced by one with checksums meanwhile
            fileio.replace(staging, dest)
            fsync_dir(dest.parent)
            return got, " + ".join(held_checks(got))
        part = reproducing_part_size(provider, key, got, staging)
        if part is None:
            raise IntegrityError(
                f"get {key}: the bytes received do not reproduce its multipart ETag {got.etag} "
                f"with any plausible part size (tried: {_tried(provider, key, got)}); "
                "the object may be damaged"
            )
        fileio.replace(staging, dest)
        fsync_dir(dest.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    return got, f"multipart ETag recomputed, {describe_part_size(part)} parts"


def _tried(provider: Provider, key: str, info: ObjectInfo) -> str:
    parsed = parse_multipart(info.etag)
    sizes = candidate_part_sizes(info.size, parsed[1]) if parsed else []
    return ", ".join(describe_part_size(p) for p in sizes) or "none fits"


# -- push ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recognition:
    """What an uncatalogued object's own checksum says about a local file of the same size."""

    same: bool
    how: str  # e.g. "md5 ETag", "multipart ETag, 8 MiB parts"
    md5: str | None = None  # the local file's md5, when it was computed


def recognise(provider: Provider, key: str, path: Path, info: ObjectInfo) -> Recognition | None:
    """Whether the object ``info`` (a stat, with metadata) holds ``path``'s bytes, judged by the
    checksum its backend vouches for; None when it has none that can be compared (or it carries
    our sha256, which the push plan compares itself). Costs one read of ``path``."""
    if info.hashes.get("sha256") or info.size != path.stat().st_size:
        return None
    md5 = info.hashes.get("md5")
    if md5:
        with progress.bar(f"md5 of {path.name}", info.size) as advance:
            local = hash_file(path, ("md5",), advance)["md5"]
        return Recognition(local == md5, md5_source(info), local)
    if parse_multipart(info.etag) is None or provider.capabilities.part_size is None:
        return None
    part = reproducing_part_size(provider, key, info, path)
    if part is None:
        return Recognition(False, "multipart ETag")
    return Recognition(True, multipart_label(part))


def already_here(provider: Provider, key: str, path: Path) -> str | None:
    """How the local file at ``path`` was shown to hold the bytes of ``key``, an object without
    a sha256 of ours (e.g. "md5 ETag"), or None: a pull then leaves it in place instead of
    keeping it aside and fetching the same bytes again."""
    if not path.is_file():
        return None
    found = recognise(provider, key, path, provider.stat(key))
    return found.how if found is not None and found.same else None


def examine(
    provider: Provider, rf: RemoteFile, path: Path, sha256: str
) -> tuple[RemoteFile, Recognition | None]:
    """An uncatalogued object of the local file's size, stated (with metadata) and compared by
    its own checksum. Once recognised its bytes are the local file's, so their sha256 is
    credited to it: the push plan then finds it present, and may copy from it."""
    info = provider.stat(rf.name)
    rf = dataclasses.replace(rf, hashes=dict(info.hashes))
    found = recognise(provider, rf.name, path, info)
    if found is not None and found.same:
        rf = dataclasses.replace(rf, hashes={**rf.hashes, "sha256": sha256})
    return rf, found


def mark_recognised(
    steps: list[Step],
    entries: dict[str, dict[str, Any]],
    recognised: Mapping[str, str],
    remote_files: Mapping[str, RemoteFile],
) -> None:
    """Say in the plan (each step's reason) and in the catalog entries to record how each
    recognised object was recognised, with the md5 its backend holds."""
    for i, step in enumerate(steps):
        if step.action is not Action.PRESENT or step.name not in recognised:
            continue
        how = recognised[step.name]
        steps[i] = dataclasses.replace(step, reason=f"recognised by its {how}")
        md5 = remote_files[step.name].hashes.get("md5")
        entries[step.name] = {**entries[step.name], "recognised": how} | (
            {"md5": md5} if md5 else {}
        )
