"""One training run under the agent's rules, for any framework (the callbacks in ``lightning`` and
``transformers`` translate their hooks into these calls):

- ``begin``: take the models-dir lock for the run and start a guarded update (``agent.guard``):
  the pre-update backup, and the marker that makes the next guarded update roll back a run that
  was killed.
- ``stage`` (after each checkpoint the framework wrote, on the training thread): the caller
  writes the model's weights into a staging directory under ``.model-safety/training/``; a local
  worker thread then puts them in place as the configured model (a rename), makes a dated
  version when one is due, and asks the push workers (``pushes``) to mirror to every
  ``auto_push`` remote. A newer checkpoint supersedes one still waiting for the local worker.
- ``finish``: the last export, then the configured gate (``validate``) and the metric gate;
  accept (a dated version) or roll back to the pre-update model; push the result and wait for it.

Every operation on the models dir (putting a checkpoint in place, a version, a push, the gate)
runs under one in-process mutex, while the run holds the models-dir lock from ``begin`` to
``finish``: a cron ``run`` cannot version a model mid-training, and the background threads never
race each other over the catalog, nor wait for a lock the run itself holds. The training thread
never takes that mutex: it only writes its staging directory and hands it over.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import itertools
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError
from agent.integrations.gate import MetricGate, record_value, recorded_value
from agent.integrations.pushes import BackgroundPushes, PushOutcome
from providers import fileio

if TYPE_CHECKING:
    from agent.api import ModelSafety
    from agent.config import ModelConfig
    from agent.guard.result import GuardResult
    from agent.guard.update import Guard

log = logging.getLogger("agent.integrations")

VERSION_POLICIES = ("due", "every", "end")


class SessionViews:
    """What a framework's callback shows of its run (both callbacks hold ``self.session``)."""

    session: TrainingSession

    @property
    def model_path(self) -> Path:
        """The configured model (``models_dir`` / ``file``): what training starts from and
        where each checkpoint's weights are put."""
        return self.session.path

    @property
    def result(self) -> GuardResult | None:
        return self.session.result

    @property
    def pushes(self) -> list[PushOutcome]:
        return self.session.pushes

    @property
    def warnings(self) -> list[str]:
        return self.session.warnings


class TrainingSession:
    """``versions``: when a checkpoint becomes a dated version: ``due`` (as ``model-safety run``:
    when the newest version is ``backup_interval_days`` old), ``every`` checkpoint, or only the
    accepted result at the ``end``. ``push``: False keeps everything local."""

    def __init__(
        self,
        config: str | os.PathLike[str] | ModelSafety | None,
        model: str | None,
        *,
        gate: MetricGate | None = None,
        versions: str = "due",
        push: bool = True,
        who: str = "training",
    ) -> None:
        from agent.api import ModelSafety

        if versions not in VERSION_POLICIES:
            raise ValueError(f"versions must be one of {', '.join(VERSION_POLICIES)}")
        self.safety = config if isinstance(config, ModelSafety) else ModelSafety.from_config(config)
        self.model: ModelConfig = self.safety.config.model(model)
        self.gate = gate
        self.versions = versions
        self.who = who
        self.remotes = [r.name for r in self.safety.config.remotes if r.auto_push] if push else []
        self.result: GuardResult | None = None
        self.pushes: list[PushOutcome] = []
        self.warnings: list[str] = []
        self.first_value: float | None = None
        self.last_value: float | None = None
        self._mutex = threading.Lock()
        self._lock_stack: contextlib.ExitStack | None = None
        self._guard: Guard | None = None
        self._background: BackgroundPushes | None = None
        self._local: _LocalWorker | None = None
        self._seq = itertools.count(1)

    @property
    def active(self) -> bool:
        return self._guard is not None

    @property
    def path(self) -> Path:
        """The configured model: where each checkpoint's weights are put."""
        return self.safety.store.path(self.model.file)

    @property
    def staging(self) -> Path:
        return self.safety.config.state_dir / "training" / self.model.name

    # -- metrics ---------------------------------------------------------------------------
    def observe(self, metrics: Mapping[str, Any]) -> None:
        """Note the gate's metric when the framework reports it (any time, also before
        ``begin``: an evaluation of the pre-update model is a fine baseline)."""
        if self.gate is None:
            return
        value = _number(metrics.get(self.gate.metric))
        if value is None:
            return
        if self.first_value is None:
            self.first_value = value
        self.last_value = value

    # -- the run ---------------------------------------------------------------------------
    def begin(self) -> None:
        """Lock, back up, mark the update as running. Raises AgentError when the run cannot be
        protected (another process holds the lock, the model fails its check): better to stop
        before training than to train without a way back."""
        from agent.guard.update import Guard

        stack = contextlib.ExitStack()
        stack.enter_context(self.safety.locked(f"{self.who}: {self.model.name}"))
        try:
            guard = Guard(self.safety.store, self.model.name, version=True)
            guard.begin()
        except BaseException:
            stack.close()
            raise
        for line in guard.warnings:
            log.warning("model-safety: %s", line)
        self._lock_stack, self._guard = stack, guard
        self.result, self.pushes, self.warnings = None, [], []
        shutil.rmtree(self.staging, ignore_errors=True)  # left by a run that was killed
        self.staging.mkdir(parents=True, exist_ok=True)
        self._background = BackgroundPushes(self.remotes, self._push)
        self._local = _LocalWorker(self._install)
        # A script whose training raised (the Trainer has no hook for that) ends the run on the
        # way out: what the failed run changed is rolled back and the lock released.
        atexit.register(self._at_exit)
        backup = guard.backup_entry.name if guard.backup_entry else "none"
        log.info("model-safety: %s: training started; pre-update copy %s", self.model.name, backup)

    def stage(self, write: Callable[[Path], None], label: str) -> None:
        """Write the model's weights with ``write(path)`` (``path``: the configured model's
        name inside a fresh staging directory) and hand them to the local worker. Errors are
        warnings: a failed export costs this checkpoint's version, never the training run."""
        if self._local is None:
            return
        partial = self.staging / f"{next(self._seq)}.partial"
        try:
            partial.mkdir()
            write(partial / self.model.file)
            ready = partial.with_suffix("")
            os.replace(partial, ready)
        except Exception as exc:
            shutil.rmtree(partial, ignore_errors=True)
            self._warn(f"could not export {label} to {self.model.file}: {exc}")
            return
        self._local.submit(ready, label)

    def finish(
        self, *, failed: str | None = None, final: Callable[[Path], None] | None = None
    ) -> GuardResult | None:
        """End the run: the ``final`` export (None: the last checkpoint's stands), the gates,
        accept or roll back, push the result. ``failed``: the training itself failed (an
        exception): whatever it changed is rolled back. Never raises for a push or the gate."""
        guard, local, background = self._guard, self._local, self._background
        if guard is None or local is None or background is None:
            return None
        try:
            if final is not None and failed is None:
                self.stage(final, "the final weights")
            # The result is pushed below: a push not started yet would send something older. The
            # push in flight is waited for (with its progress line) before the last checkpoint
            # is put in place, which needs the mutex that push holds.
            for _ in range(2):
                background.drop_queued()
                background.wait("waiting for the push in flight")
                local.drain_and_stop()
            with self._mutex:
                self.result = self._judge(guard, failed)
            if self.remotes:
                background.request()
                background.wait("pushing the result")
        except Exception as exc:
            self._warn(f"ending the run failed: {type(exc).__name__}: {exc}", level=logging.ERROR)
        finally:
            background.close()
            self.pushes = background.outcomes
            self._guard = self._local = self._background = None
            self.first_value = self.last_value = None  # the next run reports its own
            atexit.unregister(self._at_exit)
            shutil.rmtree(self.staging, ignore_errors=True)
            if self._lock_stack is not None:
                self._lock_stack.close()
                self._lock_stack = None
        return self.result

    def _at_exit(self) -> None:
        if self.active:
            self.finish(failed="the process exited before training ended")

    # -- background work (the mutex held) --------------------------------------------------
    def _judge(self, guard: Guard, failed: str | None) -> GuardResult:
        gate, previous = self.gate, None
        state_dir, name = self.safety.config.state_dir, self.model.name
        if failed is None and gate is not None:
            previous = gate.baseline
            if previous is None:
                previous = recorded_value(state_dir, name, gate.metric)
            if previous is None:
                previous = self.first_value
            why = gate.judge(self.last_value, previous)
            if why is not None:
                failed = f"quality gate: {why}"
        result = guard.finish(failed=failed)
        from agent.guard.result import ACCEPTED

        if gate is not None and self.last_value is not None and result.outcome == ACCEPTED:
            record_value(state_dir, name, gate.metric, self.last_value)
            result.message += f"; {gate.describe(self.last_value, previous)}"
        for line in result.warnings:
            log.warning("model-safety: %s", line)
        if result.exit_code == 0:
            log.info("model-safety: %s", result.message)
            sys.stderr.write(f"model-safety: {result.message}\n")  # INFO is hidden by default
        else:
            log.warning("model-safety: %s", result.message)
        return result

    def _install(self, staged: Path, label: str) -> None:
        from agent.local.backup import backup_model
        from agent.local.schedule import next_due
        from agent.local.tree import put_in_place

        try:
            with self._mutex:
                src, dest = staged / self.model.file, self.path
                _own_copies(staged)
                _fsync_tree(staged)
                if self.model.directory:
                    old = put_in_place(src, dest)
                    if old is not None:
                        shutil.rmtree(old, ignore_errors=True)
                else:
                    fileio.replace(src, dest)
                    fileio.fsync_dir(dest.parent)
                today = dt.date.today()
                store = self.safety.store
                due = next_due(store, self.model, today) <= today
                if self.versions == "every" or (self.versions == "due" and due):
                    made = backup_model(
                        store,
                        self.model.name,
                        "version",
                        f"training checkpoint {label}"[:200],
                        source=self.who,
                    )
                    log.info("model-safety: %s", made.message)
        except (AgentError, OSError) as exc:
            self._warn(f"could not record {label}: {exc}")
            return
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        if self._background is not None:
            self._background.request()

    def _push(self, remote: str) -> PushOutcome:
        from agent.remote.connect import opened_remote
        from agent.remote.push import push as do_push

        with self._mutex:
            store = self.safety.store
            with opened_remote(store, self.safety.config.remote(remote)) as r:
                report = do_push(store, r)
        if report.problems:
            return PushOutcome(remote, False, f"{report.summary()}: {'; '.join(report.problems)}")
        return PushOutcome(remote, True, report.summary())

    def _warn(self, message: str, *, level: int = logging.WARNING) -> None:
        self.warnings.append(message)
        log.log(level, "model-safety: %s", message)


class _LocalWorker:
    """One thread that puts staged checkpoints in place, newest wins: a checkpoint staged while
    another waits replaces it (the one replaced is deleted; the framework still has its own)."""

    def __init__(self, install: Callable[[Path, str], None]) -> None:
        self._install = install
        self._cond = threading.Condition()
        self._next: tuple[Path, str] | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="model-safety checkpoints")
        self._thread.daemon = True
        self._thread.start()

    def submit(self, staged: Path, label: str) -> None:
        with self._cond:
            if self._next is not None:
                shutil.rmtree(self._next[0], ignore_errors=True)
            self._next = (staged, label)
            self._cond.notify_all()

    def drain_and_stop(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._next is not None or self._closed)
                if self._next is None:
                    return
                job, self._next = self._next, None
            try:
                self._install(*job)
            except Exception as exc:  # never let the thread die with work queued behind it
                log.warning("model-safety: could not record %s: %s", job[1], exc)


def _own_copies(root: Path) -> None:
    """Replace hard links (a Hugging Face checkpoint's files, linked on the training thread) by
    files of their own, so nothing that later writes the checkpoint in place reaches the model."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.stat().st_nlink > 1:
                tmp = path.with_name(name + ".own")
                shutil.copyfile(path, tmp)
                os.replace(tmp, path)


def _fsync_tree(root: Path) -> None:
    """The staged bytes durable before a rename gives them the model's name."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fileio.fsync_dir(Path(dirpath))


def _number(value: Any) -> float | None:
    """A metric as a float: plain numbers and one-element tensors."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
