"""A guarded update: back up, let the update run, validate the result, keep it or roll back.

The same ``Guard`` serves ``model-safety guard -- COMMAND`` (the update is a child process) and the
Python API's ``with safety.guard(...)`` (the update is the body of the block):

1. ``begin``: take the pre-update backup (``auto_backup_before_train``) and remember what the
   model and its companions look like now.
2. the update runs.
3. ``finish``: nothing changed -> done. The update failed (non-zero exit, an exception, Ctrl-C)
   and something changed, or the changed model fails validation -> restore the pre-update copy
   (a verified copy to a temp file, then a rename: never half-written) and keep the rejected files
   aside as ``<stem>_replaced-<time><ext>`` unless asked to discard them. Validation passes ->
   the score is recorded and, with ``version``, a dated version is made.

A model that cannot be validated (the scorer crashed, say) is rolled back too: nothing unproven
replaces a model that was good, and the unproven one is always kept aside.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import AgentError
from agent.guard.result import (
    ACCEPTED,
    INTERRUPTED,
    NOT_CHANGED_FAILED,
    ROLLED_BACK,
    UNCHANGED,
    GuardResult,
    signals_ignored,
)
from agent.local.backup import backup_model
from agent.local.hashing import atomic_write_bytes, fsync_dir
from agent.local.restore import restore_model
from agent.local.tree import remove_tree

if TYPE_CHECKING:
    from agent.local.catalog import Entry
    from agent.local.store import Store

log = logging.getLogger(__name__)

Fingerprint = dict[str, tuple[int, int, int] | None]  # file name -> (size, mtime_ns, inode)


class Guard:
    def __init__(
        self,
        store: Store,
        model: str | None = None,
        *,
        version: bool = False,
        discard_failed: bool = False,
        today: dt.date | None = None,
    ) -> None:
        self.store = store
        self.model = store.config.model(model)
        self.version = version
        self.discard_failed = discard_failed
        self.today = today
        self.backup_entry: Entry | None = None
        self.warnings: list[str] = []
        self._before: Fingerprint = {}
        self._before_sha: dict[str, str] = {}

    @property
    def files(self) -> list[str]:
        return [*self.model.companions, self.model.file]

    # -- before the update -----------------------------------------------------------------
    @property
    def marker(self) -> Path:
        """Present while an update runs: if the process running it dies (a training script using
        the Python API killed with -9, say), the next guard finds it and rolls back first, instead
        of taking a half-written model as its pre-update backup."""
        return self.store.state_dir / f"guard-{self.model.name}.json"

    def begin(self) -> None:
        """Make sure a rollback has something to restore, before the update may touch anything."""
        store, m = self.store, self.model
        store.remove_stale_temps()
        self._recover_unfinished()
        present = _present(store.path(m.file), m.directory)
        if present and store.config.auto_backup_before_train:
            result = backup_model(
                store, m.name, "pre-update", note="before a guarded update", source="guard"
            )
            self.warnings.extend(result.warnings)
            self.backup_entry = store.catalog.get(_backup_name(store, m.name))
            log.info("%s", result.message)
        elif present:
            self.backup_entry = self._newest_copy_matching_current()
            if self.backup_entry is None:
                raise AgentError(
                    f"auto_backup_before_train is off and no intact copy of {m.name} holds the "
                    f"current {m.file}, so a failed update could not be rolled back; run "
                    f"`model-safety backup {m.name}` first or turn auto_backup_before_train on"
                )
        else:
            self.warnings.append(
                f"{m.file} does not exist yet: nothing to back up; a rejected result is moved aside"
            )
        self._before = self._fingerprint()
        for name in self.files:
            if self._before.get(name) is not None:
                self._before_sha[name] = store.sha256(store.path(name))
        self._write_marker()

    def _write_marker(self) -> None:
        doc = {
            "pid": os.getpid(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "backup": self.backup_entry.name if self.backup_entry else None,
            "before": self._before,
            "before_sha": self._before_sha,
        }
        self.store.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.marker, json.dumps(doc).encode())

    def _recover_unfinished(self) -> None:
        """Roll back what an update that never finished left behind (we hold the lock, so the
        process that wrote the marker is gone)."""
        try:
            doc = json.loads(self.marker.read_text(encoding="utf-8"))
            before = {k: tuple(v) if v else None for k, v in doc["before"].items()}
            before_sha = {str(k): str(v) for k, v in doc["before_sha"].items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.warnings.append(f"ignored an unreadable {self.marker.name}")
            self.marker.unlink(missing_ok=True)
            return
        self._before, self._before_sha = before, before_sha  # type: ignore[assignment]
        self.backup_entry = self.store.catalog.get(doc.get("backup") or "")
        if self.changed():
            result = GuardResult(self.model.name, ROLLED_BACK, "", warnings=[])
            why = (
                f"a guarded update started {doc.get('since', '?')} by pid {doc.get('pid', '?')} "
                "never finished"
            )
            self._roll_back(result, why, keep=True)
            self.warnings.append(result.message)
        self.marker.unlink(missing_ok=True)
        self.backup_entry, self._before, self._before_sha = None, {}, {}

    def _newest_copy_matching_current(self) -> Entry | None:
        copies = [
            e
            for e in self.store.catalog.of_model(self.model.name)
            if e.kind in ("backup", "version")
        ]
        for entry in sorted(copies, key=lambda e: e.created, reverse=True):
            if self.store.current_matches(self.model.name, entry):
                return entry
        return None

    def _fingerprint(self) -> Fingerprint:
        out: Fingerprint = {}
        for name in self.files:
            path = self.store.path(name)
            try:
                if self.model.directory and name == self.model.file:
                    out[name] = tree_fingerprint(path) if path.is_dir() else None
                    continue
                st = path.stat()
                out[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
            except FileNotFoundError:
                out[name] = None
        return out

    def changed(self) -> bool:
        """Did the update change the model or a companion? Stat first; hash only what moved."""
        now = self._fingerprint()
        for name in self.files:
            if now[name] == self._before.get(name):
                continue
            if now[name] is None or self._before.get(name) is None:
                return True
            if self.store.sha256(self.store.path(name)) != self._before_sha.get(name):
                return True
        return False

    # -- after the update ------------------------------------------------------------------
    def finish(
        self,
        *,
        failed: str | None = None,
        command_exit: int | None = None,
        interrupted: bool = False,
    ) -> GuardResult:
        """Judge the update. ``failed``: why the update itself failed (None when it succeeded).
        The marker stays when judging raised, so the next guard finishes the job."""
        result = self._judge(failed, command_exit, interrupted)
        self.marker.unlink(missing_ok=True)
        return result

    def _judge(
        self, failed: str | None, command_exit: int | None, interrupted: bool
    ) -> GuardResult:
        m = self.model
        base = GuardResult(
            m.name,
            UNCHANGED,
            "",
            backup=self.backup_entry.name if self.backup_entry else None,
            command_exit=command_exit,
            warnings=self.warnings,
        )
        if not self.changed():
            if interrupted:
                base.outcome, base.message = INTERRUPTED, f"interrupted; {m.file} was not changed"
            elif failed:
                base.outcome = NOT_CHANGED_FAILED
                base.message = f"the update failed ({failed}); {m.file} was not changed"
            else:
                base.message = f"the update left {m.file} unchanged; nothing to validate"
            return base
        if interrupted:
            return self._roll_back(base, "interrupted", outcome=INTERRUPTED)
        if failed:
            return self._roll_back(base, f"the update failed ({failed})")
        from agent.validation.validate import validate_model

        reference = self.backup_entry.name if self.backup_entry else None
        try:
            base.validation = validate_model(self.store, m.name, reference=reference, record=True)
        except AgentError as exc:
            base.could_not_validate = True
            return self._roll_back(base, f"the new model could not be validated ({exc})", keep=True)
        except KeyboardInterrupt:
            why = "interrupted during validation"
            return self._roll_back(base, why, outcome=INTERRUPTED, keep=True)
        if not base.validation.passed:
            why = f"validation failed: {_verdict(base.validation.summary(), m.name)}"
            return self._roll_back(base, why)
        base.outcome = ACCEPTED
        base.message = f"{m.name}: update accepted ({_verdict(base.validation.summary(), m.name)})"
        # accepted is final: a failure making the version below must not roll it back later
        self.marker.unlink(missing_ok=True)
        if self.version:
            made = backup_model(
                self.store,
                m.name,
                "version",
                note=_score_note(base),
                source="guard",
                today=self.today,
            )
            base.version = made.entries[-1].name if made.entries else None
            base.message += f"; version {base.version or 'unchanged'}"
        return base

    def _roll_back(
        self, result: GuardResult, why: str, *, outcome: str = ROLLED_BACK, keep: bool = False
    ) -> GuardResult:
        with signals_ignored():
            return self._restore_previous(result, why, outcome, keep)

    def _restore_previous(
        self, result: GuardResult, why: str, outcome: str, keep: bool
    ) -> GuardResult:
        m = self.model
        result.outcome = outcome
        discard = self.discard_failed and not keep
        if self.backup_entry is None:
            result.kept_aside = () if discard else self._set_aside()
            if discard:
                for name in self.files:
                    if self._before.get(name) is None:
                        remove_tree(self.store.path(name))
            where = f"; kept it as {', '.join(result.kept_aside)}" if result.kept_aside else ""
            result.message = (
                f"{why}; {m.file} did not exist before, so the new one was removed{where}"
            )
            return result
        from agent.errors import NothingToRestore

        try:
            restored = restore_model(
                self.store, m.name, self.backup_entry.name, discard_current=discard
            )
        except NothingToRestore as exc:
            # The pre-update copy was damaged while the update ran: the newest intact one will do.
            result.warnings.append(f"{self.backup_entry.name} cannot be used ({exc})")
            restored = restore_model(self.store, m.name, None, discard_current=discard)
        result.kept_aside = restored.kept_aside
        result.warnings.extend(restored.warnings)
        note = f"rejected by guard: {why}"[:300]
        self._note_aside(restored.kept_aside, note)
        where = (
            f"; the rejected model is kept as {', '.join(restored.kept_aside)}"
            if restored.kept_aside
            else "; the rejected model was discarded"
            if discard
            else ""
        )
        source = restored.restored_from.name if restored.restored_from else self.backup_entry.name
        result.message = f"{why}; restored {m.file} from {source}{where}"
        return result

    def _set_aside(self) -> tuple[str, ...]:
        """Move files the update created (there was no model before) out of the real names."""
        from agent.local.restore import set_aside

        when = dt.datetime.now()
        kept = []
        for name in self.files:
            path = self.store.path(name)
            if self._before.get(name) is not None or not (path.is_file() or path.is_dir()):
                continue
            sha = self.store.sha256(path)
            kept.append(
                set_aside(self.store, path, sha, when, source="guard", note="rejected by guard")
            )
        fsync_dir(self.store.models_dir)
        self.store.save()
        return tuple(kept)

    def _note_aside(self, names: tuple[str, ...], note: str) -> None:
        from dataclasses import replace

        for name in names:
            entry = self.store.catalog.get(name)
            if entry is not None:
                self.store.catalog.add(replace(entry, note=note, source="guard"))
        if names:
            self.store.save()


def _backup_name(store: Store, model: str) -> str:
    from agent.rules.naming import backup_name

    m = store.config.model(model)
    return backup_name(m.file, m.directory)


def _present(path: Path, directory: bool) -> bool:
    return path.is_dir() if directory else path.is_file()


def tree_fingerprint(root: Path) -> tuple[int, int, int]:
    """A directory's stat, as a file's: (total size, newest mtime_ns, a digest of every file's
    path, size, mtime and inode), so a file added, removed or rewritten inside it shows."""
    import hashlib

    from agent.local.tree import walk_files

    h = hashlib.sha256()
    total, newest = 0, 0
    for rel in walk_files(root):
        st = (root / rel).stat()
        total, newest = total + st.st_size, max(newest, st.st_mtime_ns)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return total, newest, int.from_bytes(h.digest()[:7], "big")


def _score_note(result: GuardResult) -> str:
    score = result.score
    return "accepted by guard" + (f"; score {score:.4g}" if score is not None else "")


def _verdict(summary: str, model: str) -> str:
    """A validation summary inside a line that already names the model: without its own
    ``<model>: `` (and ``FAILED``, which "validation failed" says)."""
    summary = summary.removeprefix(f"{model}: ")
    return summary.removeprefix("FAILED ")
