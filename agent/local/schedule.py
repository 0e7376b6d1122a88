"""The periodic job (``model-safety run``) and the storage report (``status``).

``run`` is safe to call from cron every hour: it does nothing until the newest dated version is
``backup_interval_days`` old, and even then only writes a version when the current file differs
from it — which it can tell from the hash cache without reading the model. Then it applies local
retention. The caller holds the lock (``agent.local.lock``).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.config import ModelConfig
from agent.config_retention import local_policy
from agent.errors import CheckFailed, ModelFileError
from agent.local.backup import backup_model
from agent.local.prune import prune_local
from agent.progress import GIB, human_size
from agent.rules.retention import Decision
from providers.journal import PARTIAL_KEPT_DAYS, partial_downloads

if TYPE_CHECKING:
    from agent.local.store import Store


@dataclass
class RunReport:
    actions: list[str] = field(default_factory=list)  # one line per thing done or decided
    decisions: list[Decision] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # e.g. a missing current file
    # told each action as it happens (the daemon stamps its log lines with the time)
    on_line: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def did(self, line: str) -> None:
        self.actions.append(line)
        if self.on_line is not None:
            self.on_line(line)

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": self.actions,
            "problems": self.problems,
            "prune": [d.to_dict() for d in self.decisions],
        }


def newest_version_date(
    store: Store, m: ModelConfig, today: dt.date | None = None
) -> dt.date | None:
    """The newest version's date; with ``today``, the newest not dated after it (a version
    from the future must not postpone every new version until long after its date)."""
    dates = [e.date for e in store.catalog.of_model(m.name, "version") if e.date is not None]
    if today is not None:
        dates = [d for d in dates if d <= today]
    return max(dates, default=None)


def next_due(store: Store, m: ModelConfig, today: dt.date) -> dt.date:
    newest = newest_version_date(store, m, today)
    if newest is None:
        return today
    return newest + dt.timedelta(days=store.config.backup_interval_days)


def run_job(
    store: Store,
    *,
    today: dt.date | None = None,
    prune: bool = True,
    on_line: Callable[[str], None] | None = None,
) -> RunReport:
    """Make the dated versions that are due; then local retention, unless ``prune`` is False
    (the caller then prunes itself, e.g. after pushing, with pins for unmirrored versions)."""
    today = today or dt.date.today()
    report = RunReport(on_line=on_line)
    for m in store.config.models:
        due = next_due(store, m, today)
        if due > today:
            report.did(f"{m.name}: next dated version due {due.isoformat()}")
            continue
        versions = store.catalog.of_model(m.name, "version")
        if versions and store.current_matches(m.name, versions[0]):
            report.did(f"{m.name}: unchanged since {versions[0].name}; no new version needed")
            continue
        try:
            result = backup_model(store, m.name, "version", source="run", today=today)
        except (ModelFileError, CheckFailed) as exc:  # the mirror and retention still run
            report.problems.append(str(exc))
            continue
        report.did(result.message)
        for warning in result.warnings:
            report.did(warning)
    if not prune:
        return report
    report.decisions = prune_local(store, today=today)
    for d in report.decisions:
        if not d.keep:
            report.did(f"local: deleted {d.name}: {'; '.join(d.reasons)}")
    return report


def _size(store: Store, name: str) -> int:
    """A file's size; a directory's: every file in it."""
    from agent.local.tree import tree_size

    path = store.path(name)
    try:
        return tree_size(path) if path.is_dir() else path.stat().st_size
    except (OSError, ModelFileError):
        return 0


def status_report(store: Store, model: str | None = None) -> dict[str, Any]:
    """The seed's storage calculation, for real, plus warnings."""
    today = dt.date.today()
    models = [store.config.model(model)] if model else list(store.config.models)
    free = shutil.disk_usage(store.models_dir).free
    keep_free = int(store.config.min_free_space_gb * GIB)
    out_models = []
    warnings: list[str] = []
    total = 0
    for m in models:
        current = sum(_size(store, f) for f in (m.file, *m.companions))
        states = store.versions(m.name)
        backup = sum(
            _size(store, n)
            for s in states
            if s.entry.kind == "backup"
            for n in (s.entry.name, *s.entry.companions.values())
        )
        versions = [s for s in states if s.entry.kind == "version"]
        versions_size = sum(
            _size(store, n) for s in versions for n in (s.entry.name, *s.entry.companions.values())
        )
        other = sum(
            _size(store, s.entry.name) for s in states if s.entry.kind not in ("backup", "version")
        )
        from agent.local.prune import set_aside_files

        aside = [e for e, _ in set_aside_files(store, m) if store.path(e.name).exists()]
        model_total = current + backup + versions_size + other
        total += model_total
        due = next_due(store, m, today)
        present = store.path(m.file).is_dir() if m.directory else store.path(m.file).is_file()
        if not present:
            warnings.append(f"{m.name}: current file {m.file} is missing; run `restore`")
        if backup == 0:
            warnings.append(f"{m.name}: no pre-update backup yet (`model-safety backup`)")
        if not versions:
            warnings.append(f"{m.name}: no dated version yet (`model-safety run`)")
        for s in states:
            if s.state != "ok":
                warnings.append(f"{m.name}: {s.entry.name} is {s.state}; see `model-safety verify`")
        if free - current < keep_free:
            warnings.append(
                f"{m.name}: low disk: the next version needs {human_size(current)}, "
                f"{human_size(free)} free, min_free_space_gb {store.config.min_free_space_gb:g} "
                "(GiB)"
            )
        from agent.local.storage import local_side

        copies = [
            n
            for st in states
            for n in (
                (st.entry.name, *st.entry.companions.values())
                if st.entry.kind in ("backup", "version")
                else (st.entry.name,)
            )
        ]
        here = local_side(
            store,
            [m.file, *m.companions, *copies],
            next_version=current,
            free=free,
            keep_free=keep_free,
            size_of=_size,
        )
        out_models.append(
            {
                "name": m.name,
                "current_present": present,
                "current_bytes": current,
                "backup_bytes": backup,
                "versions": len(versions),
                "versions_bytes": versions_size,
                "other_bytes": other,
                "set_aside": len(aside),
                "set_aside_bytes": sum(_size(store, e.name) for e in aside),
                "total_bytes": model_total,
                "next_version_needs_bytes": current,
                "next_version_due": due.isoformat(),
                "newest_version": (versions[0].entry.name if versions else None),
                "storage": {"local": here, "remotes": {}},
            }
        )
    # downloads a killed or failed pull left half done, for every remote
    partial = [p for d in store.download_journal_dirs() for p in partial_downloads(d)]
    partial_bytes = sum(p.size for p in partial)
    if partial:
        warnings.append(
            f"{human_size(partial_bytes)} in {len(partial)} partial "
            f"download(s) of a pull that was interrupted or is running now "
            f"({', '.join(p.temp.name for p in partial)}): "
            f"`model-safety pull` resumes them; `model-safety run` removes one nobody resumed "
            f"for {PARTIAL_KEPT_DAYS} days"
        )
    return {
        "models_dir": str(store.models_dir),
        "models": out_models,
        "partial_download_bytes": partial_bytes,
        "total_bytes": total,
        "free_bytes": free,
        "min_free_bytes": keep_free,
        "max_backups": store.config.max_backups,
        "retention": local_policy(store.config).describe(),
        "warnings": warnings,
    }
