"""The Python API for training scripts; the CLI calls the same agent functions.

    from agent import ModelSafety

    safety = ModelSafety.from_config("config.yaml")
    with safety.guard("dinesh_ai_model", version=True) as update:
        train(...)
        torch.save(model.state_dict(), update.path)
    print(update.result.score)

Every method that changes files holds the models-dir lock while it runs (the same lock as the
CLI, so a cron ``run`` never copies a model a guarded fine-tune is half-way through writing); the
lock is re-entrant within one ModelSafety, so ``safety.backup()`` inside ``safety.guard()`` works.
Errors are ``agent.errors.AgentError`` subclasses with a message meant for a person.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import Config, load_config
from agent.errors import AgentError
from agent.local.backup import backup_model
from agent.local.restore import restore_model

if TYPE_CHECKING:
    from agent.guard.result import GuardResult
    from agent.local.backup import BackupResult
    from agent.local.lock import Lock
    from agent.local.restore import RestoreResult
    from agent.local.store import CopyState, Store
    from agent.remote.connect import Remote
    from agent.remote.pull import PullReport
    from agent.remote.push import SyncReport
    from agent.validation.validate import ValidationResult


@dataclass
class GuardedUpdate:
    """What the body of ``with safety.guard(...)`` gets: where to write, and afterwards the
    verdict (``result`` is None until the block has ended)."""

    model: str
    path: Path
    result: GuardResult | None = None


class ModelSafety:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock: Lock | None = None
        self._lock_depth = 0

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> ModelSafety:
        """Load ``config.yaml`` (default: $MODEL_SAFETY_CONFIG or ./config.yaml)."""
        return cls(load_config(str(path) if path is not None else None))

    @cached_property
    def store(self) -> Store:
        from agent.local.store import Store

        return Store(self.config)

    @contextlib.contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """Hold the models-dir lock (re-entrant within this object)."""
        from agent.local.lock import Lock

        if self._lock_depth == 0:
            self._lock = Lock(self.config.state_dir, f"python: {command}").acquire()
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock is not None:
                self._lock.release()
                self._lock = None

    # -- local copies ----------------------------------------------------------------------
    def backup(
        self,
        model: str | None = None,
        *,
        kind: str = "pre-update",
        note: str | None = None,
        allow_failing: bool = False,
    ) -> BackupResult:
        """``kind``: "pre-update" (the ``<stem>_backup`` slot) or "version" (dated). A model
        that fails the check raises CheckFailed unless ``allow_failing``."""
        with self.locked(f"backup --kind {kind}"):
            return backup_model(
                self.store, model, kind, note, source="api", allow_failing=allow_failing
            )

    def restore(
        self,
        model: str | None = None,
        *,
        source: str | None = None,
        discard_current: bool = False,
    ) -> RestoreResult:
        """``source``: "backup", "latest", a date (YYYY-MM-DD) or a file name; default the newest
        intact copy. The replaced current file is kept aside unless another copy holds it."""
        with self.locked("restore"):
            return restore_model(self.store, model, source, discard_current)

    def versions(self, model: str | None = None) -> list[CopyState]:
        """The copies of a model, newest first, each with its state (ok, corrupted, missing)."""
        return self.store.versions(model)

    def validate(
        self, model: str | None = None, *, path: str | Path | None = None, record: bool = True
    ) -> ValidationResult:
        """Run the checks of ``model-safety validate``; ``result.passed`` says whether all held."""
        from agent.validation.validate import validate_model

        return validate_model(
            self.store, model, Path(path) if path is not None else None, record=record
        )

    # -- guarded updates -------------------------------------------------------------------
    @contextlib.contextmanager
    def guard(
        self,
        model: str | None = None,
        *,
        version: bool = False,
        discard_failed: bool = False,
        raise_on_reject: bool = True,
        today: dt.date | None = None,
    ) -> Iterator[GuardedUpdate]:
        """Back up, run the block, validate: keep the update, or roll back and raise
        ``UpdateRejected`` (``raise_on_reject=False``: look at ``update.result`` instead).
        An exception or Ctrl-C in the block rolls back a changed model and is re-raised."""
        from agent.guard.result import UpdateRejected
        from agent.guard.update import Guard

        with self.locked(f"guard {model or ''}".strip()):
            g = Guard(
                self.store, model, version=version, discard_failed=discard_failed, today=today
            )
            update = GuardedUpdate(g.model.name, self.store.path(g.model.file))
            g.begin()
            try:
                yield update
            except KeyboardInterrupt:
                update.result = g.finish(failed="interrupted", interrupted=True)
                raise
            except BaseException as exc:
                update.result = g.finish(failed=f"{type(exc).__name__}: {exc}"[:200])
                raise
            update.result = g.finish()
            if raise_on_reject and update.result.exit_code != 0:
                raise UpdateRejected(update.result)

    # -- remotes ---------------------------------------------------------------------------
    def push(self, remote: str | None = None, *, dry_run: bool = False) -> list[SyncReport]:
        """Mirror local copies to ``remote`` (default: every configured remote). Never deletes
        anything remotely; copies whose checksum no longer matches are reported, not sent."""
        from agent.remote.push import push as do_push

        names = [remote] if remote else [r.name for r in self.config.remotes]
        if not names:
            raise AgentError("no remotes configured; add one under `remotes:` in config.yaml")
        reports = []
        with contextlib.nullcontext() if dry_run else self.locked("push"):
            for name in names:
                with self._remote(name) as r:
                    reports.append(do_push(self.store, r, dry_run=dry_run))
        return reports

    def pull(
        self, remote: str | None = None, model: str | None = None, *, version: str = "latest"
    ) -> PullReport:
        """Bring copies back from ``remote`` (needed when several are configured); ``version``:
        latest, backup, YYYY-MM-DD or all."""
        from agent.remote.pull import pull as do_pull

        if remote is None:
            if len(self.config.remotes) != 1:
                raise AgentError("name the remote to pull from")
            remote = self.config.remotes[0].name
        with self.locked("pull"), self._remote(remote) as r:
            return do_pull(self.store, r, model, version)

    @contextlib.contextmanager
    def _remote(self, name: str) -> Iterator[Remote]:
        from agent.remote.connect import opened_remote

        with opened_remote(self.store, self.config.remote(name)) as r:
            yield r
