"""Delta pushes: a file to upload is assembled on the remote from the ranges an object already
there holds at the same offsets (agent.rules.delta), and only the other ranges are sent.

The range hashes of each file (providers.ranges) come from the local store and go into the remote
catalog entry, so the next push can find its sources without reading anything remote. A source
must be the object the catalog recorded, intact as far as the listing shows, and not written
earlier in the same push; the provider re-checks its identity when it copies
(``Capabilities.put_reusing``), verifies the assembled object before it becomes visible, and a
source that moved costs a plain upload, never a wrong object; one whose bytes turn out not to be
what its range hashes say is remembered as damaged (agent.remote.findings) for verify and repair,
and the file is sent whole. A server that turns out to lack the
part copy is remembered (``remotes/<name>/no-part-copy`` in the state dir) and sent whole since.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.local.hashing import atomic_write_bytes
from agent.remote.catalog import now_iso
from agent.remote.compressed import source_path
from agent.remote.connect import Remote
from agent.remote.prune import remote_good
from agent.rules.delta import best_source
from agent.rules.push_plan import Action, Step
from providers.base import BeforeCommitFn, ObjectInfo, ProgressFn, Reuse
from providers.errors import IntegrityError, NotFound, NotSupported, PreconditionFailed
from providers.ranges import RangeHashes

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)

DECLINED = "no-part-copy"


def _declined_marker(store: Store, remote: Remote) -> Path:
    """Where a remote found to lack part copy is remembered (its state dir, as Remote.open's)."""
    return store.state_dir / "remotes" / remote.name / DECLINED


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
    if remote.provider.capabilities.put_reusing is None or _declined_marker(store, remote).exists():
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
            mine = store.ranges.of(source_path(store, step.name), entry["sha256"])
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
    store: Store,
    remote: Remote,
    step: Step,
    sha256: str,
    progress: ProgressFn,
    gate: BeforeCommitFn | None = None,
) -> tuple[ObjectInfo, int, str | None]:
    """Upload ``step``'s file reusing its source's ranges: the object's info, the bytes copied
    on the server, and what was found wrong with the source (None when nothing). Falls back to a
    plain upload when the source moved, holds other bytes than recorded, or the server cannot
    copy parts (remembered)."""
    provider = remote.provider
    put_reusing = provider.capabilities.put_reusing
    assert step.reuse is not None and put_reusing is not None
    source = remote.objects[step.reuse.name]
    ranges = RangeHashes.from_json((source.recorded or {}).get("ranges"))
    assert ranges is not None
    reuse = Reuse(source.name, dict(source.info.identity), ranges.size, step.reuse.ranges)
    path = source_path(store, step.name)
    expected = {"sha256": sha256}
    suspect = None
    try:
        info, copied = put_reusing(
            step.name, path, reuse, expected_hashes=expected, progress=progress, before_commit=gate
        )
        return info, copied, None
    except (PreconditionFailed, NotFound) as exc:
        log.warning("remote %s: %s changed since it was listed (%s); sending %s whole",
                    remote.name, source.name, exc, step.name)  # fmt: skip
    except IntegrityError as exc:
        suspect = str(exc)
    except NotSupported as exc:
        log.warning("remote %s cannot copy parts (%s); sending whole files from now on",
                    remote.name, exc)  # fmt: skip
        marker = _declined_marker(store, remote)
        marker.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(marker, f"{exc}\n".encode())
    info = provider.put(
        step.name, path, expected_hashes=expected, progress=progress, before_commit=gate
    )
    if suspect is None:
        return info, 0, None
    if source.name == step.name:  # the damaged object is the one this upload just replaced
        log.warning("remote %s: the %s it held was damaged (%s); replaced by the file sent whole",
                    remote.name, source.name, suspect)  # fmt: skip
        return info, 0, None
    # The same local bytes went up whole and checked out: what the copied ranges held was not
    # what the source's range hashes promised, so the source is damaged under an unchanged
    # identity. Remembered like a deep verify's finding, for verify and repair.
    detail = "its bytes differ from the range hashes recorded at push (found by a delta push)"
    remote.findings.note(remote.name, source.name, source.info.identity, detail, now_iso())
    remote.findings.save()
    return (
        info,
        0,
        (
            f"{source.name}: damaged on {remote.name}: {detail}; "
            f"`model-safety repair --remote {remote.name}` heals it"
        ),
    )
