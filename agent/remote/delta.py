"""Delta pushes: a file to upload is assembled on the remote from the ranges an object already
there holds at the same offsets (agent.rules.delta), and only the other ranges are sent.

The range hashes of each file (providers.ranges) come from the local store and go into the remote
catalog entry, so the next push can find its sources without reading anything remote. A source
must be the object the catalog recorded, intact as far as the listing shows, and not written
earlier in the same push; the provider re-checks its identity when it copies
(``Capabilities.put_reusing``), verifies the assembled object before it becomes visible, and a
source that moved costs a plain upload, never a wrong object. A server that turns out to lack the
part copy is remembered (``remotes/<name>/no-part-copy`` in the state dir) and sent whole since.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from agent.local.hashing import atomic_write_bytes
from agent.remote.connect import Remote
from agent.remote.prune import remote_good
from agent.rules.delta import best_source
from agent.rules.push_plan import Action, Step
from providers.base import ObjectInfo, ProgressFn, Reuse
from providers.errors import NotSupported, PreconditionFailed
from providers.ranges import RangeHashes

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)

DECLINED = "no-part-copy"


def _declined(store: Store, remote: Remote) -> bool:
    return (store.state_dir / "remotes" / remote.name / DECLINED).exists()


def record_ranges(store: Store, entries: dict[str, dict[str, Any]]) -> None:
    """Put into each catalog entry the range hashes the store already knows (no read)."""
    for entry in entries.values():
        known = store.ranges.get(entry["sha256"], entry["size"])
        if known is not None:
            entry["ranges"] = known.to_json()


def plan_deltas(
    store: Store, remote: Remote, steps: list[Step], entries: dict[str, dict[str, Any]]
) -> list[Step]:
    """``steps`` with each upload given the best source on the remote, where the provider can
    copy ranges; the file's range hashes are read once if the store has none yet."""
    record_ranges(store, entries)
    if remote.provider.capabilities.put_reusing is None or _declined(store, remote):
        return steps
    candidates: dict[str, tuple[RangeHashes, int]] = {}
    for obj in remote.objects.values():
        ranges = RangeHashes.from_json((obj.recorded or {}).get("ranges"))
        if ranges is None or not ranges.fits(obj.info.size) or not obj.info.identity:
            continue
        if (
            obj.recorded
            and obj.recorded.get("size") == obj.info.size
            and remote_good(remote, obj.name)
        ):
            candidates[obj.name] = (ranges, obj.info.size)
    if not candidates:
        return steps
    out: list[Step] = []
    written: set[str] = set()  # a source overwritten earlier in this push is no source
    for step in steps:
        if step.action is Action.UPLOAD:
            entry = entries[step.name]
            mine = store.ranges.of(store.path(step.name), entry["sha256"])
            entry["ranges"] = mine.to_json()
            usable = {n: c for n, c in candidates.items() if n not in written}
            source = best_source(mine, step.size, usable)
            if source is not None:
                step = dataclasses.replace(step, reuse=source)
        if step.action in (Action.UPLOAD, Action.COPY):
            written.add(step.name)
        out.append(step)
    return out


def put_delta(
    store: Store, remote: Remote, step: Step, sha256: str, progress: ProgressFn
) -> tuple[ObjectInfo, int]:
    """Upload ``step``'s file reusing its source's ranges; the object's info and the bytes
    copied on the server. Falls back to a plain upload when the source moved or the server
    cannot copy parts (remembered)."""
    provider = remote.provider
    put_reusing = provider.capabilities.put_reusing
    assert step.reuse is not None and put_reusing is not None
    source = remote.objects[step.reuse.name]
    ranges = RangeHashes.from_json((source.recorded or {}).get("ranges"))
    assert ranges is not None
    reuse = Reuse(source.name, dict(source.info.identity), ranges.size, step.reuse.ranges)
    path = store.path(step.name)
    expected = {"sha256": sha256}
    try:
        return put_reusing(step.name, path, reuse, expected_hashes=expected, progress=progress)
    except PreconditionFailed as exc:
        log.warning("remote %s: %s changed since it was listed (%s); sending %s whole",
                    remote.name, source.name, exc, step.name)  # fmt: skip
    except NotSupported as exc:
        log.warning("remote %s cannot copy parts (%s); sending whole files from now on",
                    remote.name, exc)  # fmt: skip
        marker = store.state_dir / "remotes" / remote.name / DECLINED
        marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(marker, f"{exc}\n".encode())
    return provider.put(step.name, path, expected_hashes=expected, progress=progress), 0
