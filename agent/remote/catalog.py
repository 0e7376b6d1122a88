"""The catalog a remote keeps about itself: ``.model-safety/catalog.json`` under its prefix.

It records, per file name, the size and checksums the agent pushed (sha256 always; md5 too, so a
backend that only holds md5, like Drive, can be checked without a download), what the file is
(model, kind, date, note, companions), what the backend said about the stored object (``object``:
its identity, which changes when the object is rewritten) and when it was last verified. It is
written last in a push, with a conditional write (compare-and-swap on the etag): an agent that
loses the race re-reads the catalog and applies its edit again, so two agents pushing to one
remote never lose each other's entries.

The catalog is a convenience, never the truth: a file counts as present only when the object is
there with matching size and checksum, and ``pull`` works without any catalog at all.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.faultpoints import crash_point
from providers.base import Provider
from providers.errors import IntegrityError, NotFound, PreconditionFailed

log = logging.getLogger(__name__)

CATALOG_KEY = ".model-safety/catalog.json"
FORMAT = "model-safety/remote-catalog"
MAX_ATTEMPTS = 20


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


@dataclass
class RemoteCatalog:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Versions this remote's retention removed, name -> when: they were mirrored once and expired
    # by policy, which local retention must tell apart from versions never pushed.
    expired: dict[str, str] = field(default_factory=dict)
    # Directory copies (a model saved as a directory): name -> entry whose ``files`` lists every
    # file (``<name>/<path>`` on the remote) with size and sha256: the manifest, written only
    # after every file arrived, so a half-pushed directory is listed nowhere.
    trees: dict[str, dict[str, Any]] = field(default_factory=dict)
    etag: str | None = None  # of the object this was read from; None when there was none
    # Why the stored catalog could not be read (it is then treated as empty); None when fine.
    damaged: str | None = None

    @property
    def intact(self) -> bool:
        """Read from an object that exists and parsed whole: what is in hand is what is there."""
        return self.etag is not None and not self.damaged

    @classmethod
    def from_bytes(cls, data: bytes, etag: str | None) -> RemoteCatalog:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a model-safety remote catalog")
        files = doc.get("files")
        if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
            raise ValueError("remote catalog has a malformed files section")
        expired = doc.get("expired") or {}
        if not isinstance(expired, dict):
            raise ValueError("remote catalog has a malformed expired section")
        trees = doc.get("trees") or {}
        if not isinstance(trees, dict) or not all(isinstance(e, dict) for e in trees.values()):
            raise ValueError("remote catalog has a malformed trees section")
        return cls(files=dict(files), expired=dict(expired), trees=dict(trees), etag=etag)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "version": 1,
            "updated": now_iso(),
            "files": dict(sorted(self.files.items())),
            "expired": dict(sorted(self.expired.items())),
        }
        if self.trees:
            doc["trees"] = dict(sorted(self.trees.items()))
        return (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode("utf-8")

    # -- edits ---------------------------------------------------------------------------------
    def record(self, name: str, entry: dict[str, Any]) -> None:
        from agent.remote.compressed import persisted

        stamped = persisted(entry)  # a compressed object's entry keeps the model's identity
        stamped.setdefault("pushed_at", now_iso())
        stamped.setdefault("pushed_by", socket.gethostname())
        self.files[name] = stamped
        self.expired.pop(name, None)

    def forget(self, name: str) -> None:
        """The object was removed by this remote's retention."""
        self.files.pop(name, None)
        self.expired[name] = now_iso()

    def mark_verified(self, name: str, when: str | None = None) -> None:
        if name in self.files:
            self.files[name]["verified_at"] = when or now_iso()


def replaced_since_push(recorded: Mapping[str, Any] | None, identity: Mapping[str, str]) -> str:
    """How the object differs from the one push recorded (its identity: S3 etag and version id,
    Drive md5Checksum and head revision, a local remote's size and mtime_ns), or "" when every
    key both sides know agrees. Entries written before identities were recorded say nothing."""
    then = (recorded or {}).get("object") or {}
    if not isinstance(then, Mapping):
        return ""
    changed = [k for k in sorted(then.keys() & identity.keys()) if str(then[k]) != identity[k]]
    return ", ".join(f"{k} {identity[k]} (recorded {then[k]})" for k in changed)


def load(provider: Provider) -> RemoteCatalog:
    """The remote's catalog; an empty one when there is none. A damaged catalog is logged and
    treated as absent (the files themselves are the truth)."""
    get_bytes = provider.capabilities.get_bytes
    if get_bytes is None:
        raise TypeError(f"remote {provider.name!r} cannot store a catalog (no small-object API)")
    try:
        data, info = get_bytes(CATALOG_KEY)
    except NotFound:
        return RemoteCatalog()
    except IntegrityError as exc:
        # Its bytes no longer match the sha256 stored with it (bit rot, a hand edit): as damaged
        # as unparsable JSON. The etag lets the next write replace it conditionally.
        log.warning(
            "remote %s: catalog is damaged (%s); rebuilding it from the files", provider.name, exc
        )
        try:
            etag = provider.stat(CATALOG_KEY).etag
        except NotFound:
            return RemoteCatalog()
        return RemoteCatalog(etag=etag, damaged=f"its checksum does not match: {exc}")
    try:
        return RemoteCatalog.from_bytes(data, info.etag)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning(
            "remote %s: catalog is damaged (%s); rebuilding it from the files", provider.name, exc
        )
        return RemoteCatalog(etag=info.etag, damaged=str(exc))


def update(provider: Provider, edit: Callable[[RemoteCatalog], None]) -> RemoteCatalog:
    """Apply ``edit`` to the remote catalog without losing a concurrent writer's changes: read,
    edit, conditional write; on a lost race read again and re-apply ``edit`` (so it must be
    idempotent). Backends without conditional writes get a read-back check instead, which narrows
    the window but cannot close it; their capabilities say so."""
    put_bytes = provider.capabilities.put_bytes
    assert put_bytes is not None
    conditional = provider.capabilities.conditional_write
    for attempt in range(1, MAX_ATTEMPTS + 1):
        catalog = load(provider)
        before = {name: dict(entry) for name, entry in catalog.files.items()}
        # an edit that changes nothing in an intact catalog writes nothing (no request, no race)
        unchanged = catalog.to_bytes() if catalog.intact else None
        edit(catalog)
        data = catalog.to_bytes()
        if data == unchanged:
            return catalog
        crash_point("remote-catalog-write")  # test-only: objects pushed, catalog not written
        try:
            if not conditional:
                info = put_bytes(CATALOG_KEY, data)
            elif catalog.etag is None:
                info = put_bytes(CATALOG_KEY, data, if_none_match=True)
            else:
                info = put_bytes(CATALOG_KEY, data, if_match=catalog.etag)
        except PreconditionFailed:
            log.info(
                "remote %s: catalog changed under us (try %d); re-reading", provider.name, attempt
            )
            time.sleep(random.uniform(0, 0.05 * attempt))
            continue
        catalog.etag = info.etag
        if conditional or _holds_edit(load(provider), before, catalog):
            return catalog
    raise PreconditionFailed(
        f"remote {provider.name!r}: could not write its catalog after {MAX_ATTEMPTS} tries "
        "(another agent keeps writing it); run the command again"
    )


def _holds_edit(
    seen: RemoteCatalog, before: dict[str, dict[str, Any]], ours: RemoteCatalog
) -> bool:
    """Whether the catalog read back still carries every change our edit made."""
    for name, entry in ours.files.items():
        if before.get(name) != entry and seen.files.get(name, {}).get("sha256") != entry.get(
            "sha256"
        ):
            return False
    return all(name not in seen.files for name in before if name not in ours.files)
