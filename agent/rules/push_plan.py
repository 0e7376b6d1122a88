"""What a push would do, decided without any I/O.

The executor (agent/remote/push.py) gathers the facts — local files with their catalog state, the
remote's listing and catalog — and this module turns them into steps, one per file, each with a
reason a person can read. Keeping it pure makes the safety rules testable exhaustively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent.rules.delta import DeltaSource


class Action(StrEnum):
    UPLOAD = "upload"
    COPY = "copy"  # server-side, from another key holding the same bytes
    PRESENT = "present"  # already there with matching size and checksum
    REFUSE = "refuse"  # never sent: corrupted locally or failed the structural check


@dataclass(frozen=True)
class LocalFile:
    name: str
    size: int
    sha256: str
    ok: bool = True  # bytes still match the local catalog entry
    blocked: str | None = None  # e.g. "does not load with weights_only=True: ..."
    md5: str | None = None
    entry: Mapping[str, Any] = field(
        default_factory=dict
    )  # local catalog entry, for the remote one


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    hashes: Mapping[str, str]  # what the provider vouches for (sha256 in metadata, Drive md5, ...)
    recorded: Mapping[str, Any] | None = None  # the remote catalog's entry, if any
    # rewritten since push recorded it (another etag, revision, mtime): its metadata and the
    # catalog no longer vouch for its bytes
    replaced: bool = False


@dataclass(frozen=True)
class Step:
    action: Action
    name: str
    size: int
    reason: str
    source: str | None = None  # for COPY
    reuse: DeltaSource | None = None  # for UPLOAD: ranges copied on the remote from an object


def compare_hashes(held: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool | None:
    """Compare every checksum both sides have: False if any differs (a server-computed md5 can
    expose damage that a stored sha256 property still hides), True if some match and none
    differ, None when there is no checksum in common."""
    common = [a for a in ("sha256", "md5") if held.get(a) and wanted.get(a)]
    if not common:
        return None
    return all(held[a] == wanted[a] for a in common)


def same_content(local: LocalFile, remote: RemoteFile) -> bool | None:
    """True/False when the remote object can be compared with the local file without a download
    (size, then every checksum both sides have); None when no common checksum exists."""
    if remote.size != local.size or remote.replaced:
        return False
    same = compare_hashes(remote.hashes, {"sha256": local.sha256, "md5": local.md5})
    if same is not None:
        return same
    recorded = remote.recorded or {}
    if recorded.get("sha256") and recorded.get("size") == remote.size:
        # only the catalog vouches for it; good enough to skip, `verify --deep` reads the bytes
        if compare_hashes(remote.hashes, recorded) is False:
            return False
        return recorded["sha256"] == local.sha256
    return None


def plan_push(
    local: Iterable[LocalFile], remote: Mapping[str, RemoteFile], *, can_copy: bool
) -> list[Step]:
    # sha256 -> the names on the remote holding those bytes once the steps so far are done
    holders: dict[str, list[str]] = {}
    for obj in remote.values():
        sha = obj.hashes.get("sha256") or (obj.recorded or {}).get("sha256")
        if (
            sha
            and not obj.replaced
            and (obj.recorded is None or obj.recorded.get("size") in (None, obj.size))
        ):
            holders.setdefault(sha, []).append(obj.name)
    steps = []
    for lf in local:
        if not lf.ok:
            steps.append(
                Step(
                    Action.REFUSE,
                    lf.name,
                    lf.size,
                    "corrupted locally: checksum differs from "
                    "its catalog entry (run `model-safety repair`)",
                )
            )
            continue
        if lf.blocked:
            steps.append(Step(Action.REFUSE, lf.name, lf.size, lf.blocked))
            continue
        there = remote.get(lf.name)
        if there is not None:
            same = same_content(lf, there)
            if same:
                steps.append(Step(Action.PRESENT, lf.name, lf.size, "already on the remote"))
                continue
            reason = (
                "remote copy was replaced since it was pushed"
                if there.replaced
                else "remote copy differs"
                if same is False
                else "remote copy cannot be compared"
            )
        else:
            reason = "not on the remote"
        source = next((n for n in holders.get(lf.sha256, ()) if n != lf.name), None)
        if can_copy and source is not None:
            steps.append(
                Step(Action.COPY, lf.name, lf.size, f"same bytes as {source} on the remote", source)
            )
        else:
            steps.append(Step(Action.UPLOAD, lf.name, lf.size, reason))
        # lf.name now holds lf's bytes and no others: a later file with these bytes (the
        # current file of a version just made, the backup slot) is copied from it server-side,
        # so content goes over the wire once per push, and nothing copies from it what it held
        for names in holders.values():
            if lf.name in names:
                names.remove(lf.name)
        holders.setdefault(lf.sha256, []).append(lf.name)
    return steps
