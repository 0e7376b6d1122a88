"""Remote retention for directory copies (agent.remote.trees): the remote's own policy applied
to its directory versions, with the same rules as for files (never fewer than 2, versions dated
after today kept and not counted). A version's manifest is removed first, so from then on no
pull can take it, then its files; files a killed prune left behind under an expired version's
name are removed by the next one."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from agent.faultpoints import crash_point
from agent.remote import catalog as remote_catalog
from agent.rules.retention import Candidate, Decision, plan_retention

if TYPE_CHECKING:
    from agent.local.store import Store
    from agent.remote.connect import Remote


def prune_trees(
    store: Store, remote: Remote, *, dry_run: bool = False, today: dt.date | None = None
) -> list[Decision]:
    from agent.local.prune import warn_future
    from agent.remote.tree_pull import remote_trees

    today = today or dt.date.today()
    held = remote.catalog  # this run's reading, refreshed after every write it made
    if not held.trees and not held.expired:
        return []
    remote.refresh()
    listing = [info.key for info in remote.provider.list("")]
    decisions: list[Decision] = []
    doomed: list[str] = []
    for m in store.config.models:
        versions = [e for e in remote_trees(remote, m) if e.get("kind") == "version"]
        if not versions:
            continue
        cands = [
            Candidate(
                e["name"],
                dt.date.fromisoformat(e["date"]) if e.get("date") else dt.date.min,
                int(e.get("seq", 1)),
            )
            for e in versions
        ]
        plan = plan_retention(cands, remote.config.retention, minimum=2, today=today)
        warn_future(plan, today, f"remote {remote.name}")
        decisions.extend(plan)
        doomed += [d.name for d in plan if not d.keep]
    if dry_run:
        return decisions
    if doomed:

        def edit(catalog: remote_catalog.RemoteCatalog) -> None:
            for name in doomed:
                if catalog.trees.pop(name, None) is not None:
                    catalog.expired[name] = remote_catalog.now_iso()

        held = remote_catalog.update(remote.provider, edit)
        remote.refresh()
    gone = {n for n in held.expired if n not in held.trees}
    for key in listing:
        if key.partition("/")[0] in gone and "/" in key:
            remote.provider.delete(key)
            crash_point("tree-prune-delete")  # test-only: part of a directory deleted
    return decisions
