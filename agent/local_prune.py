"""Local retention: which dated versions of the models dir to keep, and deleting the rest safely.

Keeps the newest ``max_backups`` dated versions (never fewer than 2, never the backup slot or the
current file); versions dated after today are kept, not counted, and warned about.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING

from agent.faultpoints import crash_point
from agent.retention import Candidate, Decision, RetentionPolicy, plan_retention

if TYPE_CHECKING:
    from agent.catalog import Entry
    from agent.store import Store

log = logging.getLogger(__name__)


def warn_future(plan: list[Decision], today: dt.date, where: str) -> None:
    """Say which versions retention left alone because they are dated after today."""
    future = [d.name for d in plan if any(r.startswith("dated after today") for r in d.reasons)]
    if future:
        log.warning(
            "%s: %s dated after today (%s): kept and not counted by retention; check the system "
            "clock, or rename/remove copies made by a machine whose clock was wrong",
            where,
            ", ".join(future),
            today,
        )


def prune_local(
    store: Store,
    model: str | None = None,
    *,
    dry_run: bool = False,
    pins: Mapping[str, str] | None = None,
    today: dt.date | None = None,
) -> list[Decision]:
    """Keep the newest ``max_backups`` dated versions (never fewer than 2, never the backup
    slot or the current file); ``pins`` maps version names to a reason they must stay.
    Versions dated after ``today`` (default: the system date) are kept, not counted, and
    warned about: the clock or their names are wrong."""
    pins = pins or {}
    today = today or dt.date.today()
    policy = RetentionPolicy(keep_last=store.config.max_backups)
    models = [store.config.model(model)] if model else list(store.config.models)
    decisions: list[Decision] = []
    for m in models:
        versions = store.catalog.of_model(m.name, "version")
        cands = [
            Candidate(
                e.name,
                e.date or e.created.date(),
                e.seq,
                good=store.state_of(e).state == "ok",
                pin=pins.get(e.name),
            )
            for e in versions
        ]
        plan = plan_retention(cands, policy, minimum=2, today=today)
        warn_future(plan, today, "models_dir")
        decisions.extend(plan)
        if not dry_run:
            _delete_versions(store, [store.catalog.entries[d.name] for d in plan if not d.keep])
    store.save()
    return decisions


def _delete_versions(store: Store, entries: list[Entry]) -> None:
    """Forget the versions in the saved catalog first, then delete their files. A kill in
    between leaves whole files the next catalog load finds again (as good versions that the
    next prune deletes); the other order would leave a version whose companion is gone, seen
    as corrupted and kept forever."""
    names = [name for e in entries for name in (*e.companions.values(), e.name)]
    if not names:
        return
    for name in names:
        store.catalog.remove(name)
        store.cache.forget(name)
    store.save()
    for name in names:
        with suppress(FileNotFoundError):
            store.path(name).unlink()
        crash_point("prune-delete")  # test-only: some files of a version gone
