"""Local retention: which dated versions of the models dir to keep, and deleting the rest safely.

Applies the config's local policy (``max_backups`` as keep_last, plus the global ``retention:``
rules such as ``keep_within_days``; agent.rules.retention), never fewer than 2 versions, never the
backup slot or the current file; versions dated after today are kept, not counted, and warned
about.

Set-aside files (``<stem>_replaced-<time><ext>``, left by a restore or a rejected ``guard``) are
removed only on request (``prune --replaced-older-than DAYS``): they are copies the user chose to
replace, so removing old ones is the point, but the newest set-aside copy of each file is always
kept, whatever its age, so the last "undo" stays possible.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING

from agent.config_retention import local_policy
from agent.faultpoints import crash_point
from agent.local.tree import remove_tree
from agent.rules.naming import parse_name
from agent.rules.retention import Candidate, Decision, plan_retention

if TYPE_CHECKING:
    from agent.config import ModelConfig
    from agent.local.catalog import Entry
    from agent.local.store import Store

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
    """Apply the local policy to dated versions (never fewer than 2, never the backup slot or
    the current file); ``pins`` maps version names to a reason they must stay.
    Versions dated after ``today`` (default: the system date) are kept, not counted, and
    warned about: the clock or their names are wrong."""
    pins = pins or {}
    today = today or dt.date.today()
    if not dry_run:
        store.remove_stale_temps()  # a version a killed prune renamed away, half deleted
    policy = local_policy(store.config)
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
            _delete_entries(store, [store.catalog.entries[d.name] for d in plan if not d.keep])
    if not dry_run and model is None:
        # range hashes of content no copy here holds any more (kept by content, so the hash
        # cache's current files and every catalogued copy are what still needs them)
        store.ranges.keep_only({e.sha256 for e in store.catalog} | store.cache.shas())
    store.save()
    return decisions


def set_aside_files(store: Store, m: ModelConfig) -> list[tuple[Entry, dt.datetime]]:
    """The set-aside files of model ``m`` (its file and its companions'), each with when it was
    set aside (local time, from its name), newest first."""
    found = []
    for e in store.catalog:
        if e.model != m.name or e.kind != "replaced":
            continue
        parsed = parse_name(e.name, e.companion or m.file, m.directory and e.companion is None)
        if parsed is not None and parsed.replaced_at is not None:
            found.append((e, parsed.replaced_at))
    return sorted(found, key=lambda item: item[1], reverse=True)


def prune_set_aside(
    store: Store,
    model: str | None,
    older_than_days: int,
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> list[Decision]:
    """Delete set-aside files set aside more than ``older_than_days`` days ago, except the newest
    of each file (the model's and each companion's)."""
    now = now or dt.datetime.now()  # set-aside names carry local time
    age = dt.timedelta(days=older_than_days)
    models = [store.config.model(model)] if model else list(store.config.models)
    decisions: list[Decision] = []
    for m in models:
        newest_kept: set[str] = set()
        doomed = []
        for e, when in set_aside_files(store, m):
            base = e.companion or m.file
            if base not in newest_kept:
                newest_kept.add(base)
                reason = f"the newest set-aside copy of {base} (set aside {when:%Y-%m-%d %H:%M})"
                decisions.append(Decision(e.name, True, (reason,)))
            elif now - when > age:
                reason = f"set aside {when:%Y-%m-%d %H:%M}, more than {older_than_days} day(s) ago"
                decisions.append(Decision(e.name, False, (reason,)))
                doomed.append(e)
            else:
                reason = f"set aside {when:%Y-%m-%d %H:%M}, within {older_than_days} day(s)"
                decisions.append(Decision(e.name, True, (reason,)))
        if doomed and not dry_run:
            _delete_entries(store, doomed)
    return decisions


def _delete_entries(store: Store, entries: list[Entry]) -> None:
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
            remove_tree(store.path(name))  # a file, or a directory copy renamed away first
        crash_point("prune-delete")  # test-only: some files of a version gone
