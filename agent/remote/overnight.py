"""Mirroring and retention across sides: what ``sync`` does, and what ``run`` adds for every
``auto_push`` remote. Remotes are independent: one that fails is reported and the others go on."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.config import RemoteConfig
from agent.errors import AgentError
from agent.local.prune import prune_local
from agent.remote.connect import Remote, about_remote
from agent.remote.prune import prune_remote, unmirrored_pins
from agent.remote.push import Interrupted, SyncReport, push
from agent.rules.retention import Decision
from providers.errors import ProviderError

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)


@dataclass
class MirrorResult:
    reports: list[SyncReport] = field(default_factory=list)
    local_decisions: list[Decision] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a target that could not be reached, ...
    # a remote consulted only for local retention that could not be reached: its copies count as
    # absent (more is kept locally), worth a warning but not a failed run
    warnings: list[str] = field(default_factory=list)

    @property
    def has_problems(self) -> bool:
        return bool(self.problems) or any(r.problems for r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        return {
            "remotes": [r.to_dict() for r in self.reports],
            "local_prune": [d.to_dict() for d in self.local_decisions],
            "problems": self.problems,
            "warnings": self.warnings,
        }


def mirror_and_prune(
    store: Store,
    targets: Sequence[RemoteConfig],
    *,
    dry_run: bool = False,
    force: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    today: dt.date | None = None,
    on_line: Callable[[str], None] | None = None,
    on_report: Callable[[SyncReport], None] | None = None,
) -> MirrorResult:
    """Push to each target and apply its retention; then local retention, which keeps every
    version that no configured remote holds yet (unless ``force``). ``on_line`` is told each
    transfer as it is done, ``on_report`` each remote's report once its retention is applied."""
    result = MirrorResult()
    remotes: dict[str, Remote] = {}
    try:
        for rc in targets:
            remote = _open(store, rc, result.problems)
            if remote is None:
                continue
            remotes[rc.name] = remote
            try:
                report = push(
                    store, remote, dry_run=dry_run, should_stop=should_stop, on_line=on_line
                )
                if not report.problems:
                    # never thin a remote while it lacks something we meant to send
                    report.decisions = prune_remote(store, remote, dry_run=dry_run, today=today)
                else:
                    report.problems.append(f"{rc.name}: retention skipped until the push is clean")
            except ProviderError as exc:
                result.problems.append(about_remote(rc.name, exc))
                continue
            except Interrupted as exc:
                result.problems.append(about_remote(rc.name, exc))
                return result  # asked to stop: no retention on a half-finished mirror
            result.reports.append(report)
            if on_report is not None:
                on_report(report)
        pins: dict[str, str] = {}
        if not force and store.config.remotes:
            targeted = {rc.name for rc in targets}
            for rc in store.config.remotes:
                if rc.name not in targeted:
                    remote = _open(store, rc, result.warnings)
                    if remote is not None:
                        remotes[rc.name] = remote
            pins = unmirrored_pins(store, list(remotes.values()))
        result.local_decisions = prune_local(store, dry_run=dry_run, pins=pins, today=today)
    finally:
        for remote in remotes.values():
            remote.close()
    return result


def _open(store: Store, rc: RemoteConfig, failures: list[str]) -> Remote | None:
    try:
        return Remote.open(store, rc)
    except (AgentError, ProviderError) as exc:
        failures.append(about_remote(rc.name, exc))
        return None
