"""Retention on a remote: which of its dated versions its own policy keeps, and which local
versions are pinned because no remote holds them yet. A local deletion never reaches a remote;
only the remote's own policy deletes there."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from agent.faultpoints import crash_point
from agent.local.catalog import Entry
from agent.remote.catalog import RemoteCatalog
from agent.remote.compressed import model_sha256, remote_name_of
from agent.remote.connect import Remote
from agent.rules.codec import ZSTD, plain_name, stored_name
from agent.rules.push_plan import compare_hashes
from agent.rules.retention import Candidate, Decision, plan_retention
from providers.errors import ProviderError

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)


def remote_good(remote: Remote, name: str) -> bool:
    """A remote copy counts as good when it is the object push recorded, nothing found it
    damaged, and it has the size and checksum its catalog entry (or, with no entry, the provider
    itself) vouches for."""
    obj = remote.objects.get(name)
    if obj is None:
        return False
    if obj.replaced or obj.found:
        return False  # rewritten since push, or found damaged by a deep verify
    rec = obj.recorded
    if rec is None:
        return True  # nothing to compare with; `verify --deep` reads the bytes
    if rec.get("size") != obj.info.size:
        return False
    return compare_hashes(obj.info.hashes, rec) is not False


def prune_remote(
    store: Store, remote: Remote, *, dry_run: bool = False, today: dt.date | None = None
) -> list[Decision]:
    """Apply the remote's own retention to its dated versions (with their companion copies);
    versions dated after ``today`` are kept and not counted (agent.rules.retention)."""
    from agent.local.prune import warn_future

    today = today or dt.date.today()
    decisions: list[Decision] = []
    forgotten: list[str] = []
    for m in store.config.models:
        versions = [
            o
            for o in remote.objects.values()
            if o.ident.model == m.name and o.ident.kind == "version" and o.ident.companion is None
        ]
        cands = [
            Candidate(o.name, o.ident.date or dt.date.min, o.ident.seq, remote_good(remote, o.name))
            for o in versions
        ]
        plan = plan_retention(cands, remote.config.retention, minimum=2, today=today)
        warn_future(plan, today, f"remote {remote.name}")
        decisions.extend(plan)
        for d in plan:
            if d.keep or dry_run:
                continue
            doomed = remote.objects[d.name]
            companions = [
                o.name
                for o in remote.objects.values()
                if o.ident.model == m.name
                and o.ident.kind == "version"
                and o.ident.companion is not None
                and (o.ident.date, o.ident.seq) == (doomed.ident.date, doomed.ident.seq)
            ]
            # the model file first: without it the version is no longer offered for a pull
            for name in [d.name, *companions]:
                remote.provider.delete(name)
                crash_point("remote-prune-delete")  # test-only: part of a version deleted
                forgotten.append(name)
    if forgotten:
        from agent.remote import catalog as remote_catalog

        def edit(catalog: RemoteCatalog) -> None:
            for name in forgotten:
                catalog.forget(name)

        remote_catalog.update(remote.provider, edit)
        remote.refresh()
    from agent.remote.tree_prune import prune_trees

    return decisions + prune_trees(store, remote, dry_run=dry_run, today=today)


def unmirrored_pins(store: Store, remotes: list[Remote]) -> dict[str, str]:
    """Local dated versions that are on no remote yet, as retention pins: local retention never
    deletes the only copy a user has. A version some remote held and then expired by its own
    retention is not pinned: it was mirrored, and the policies agree it may go."""
    pins: dict[str, str] = {}
    if not remotes:
        return pins
    for m in store.config.models:
        for entry in store.catalog.of_model(m.name, "version"):
            forms = {plain_name(entry.name), stored_name(entry.name, ZSTD)}
            if any(_mirrored(r, entry) or any(_expired(r, n) for n in forms) for r in remotes):
                continue
            pins[entry.name] = "not on any remote yet (push first, or prune --force)"
    return pins


def _expired(remote: Remote, name: str) -> bool:
    try:
        return name in remote.catalog.expired
    except ProviderError:
        return False


def _mirrored(remote: Remote, entry: Entry) -> bool:
    try:
        if entry.is_dir:  # a directory copy is there once its manifest is (agent.remote.trees)
            return (remote.catalog.trees.get(entry.name) or {}).get("sha256") == entry.sha256
        name = remote_name_of(remote, entry.name, entry.sha256)  # either form counts
        obj = remote.objects.get(name)
    except ProviderError as exc:
        log.warning("remote %s unreachable (%s); treating its copies as absent", remote.name, exc)
        return False
    return (
        obj is not None
        and model_sha256(obj.recorded) in (entry.sha256, None)
        and (obj.info.size == entry.size or obj.ident.codec is not None)
        and remote_good(remote, name)
    )
