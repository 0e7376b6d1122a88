"""The local models dir: backup, restore, list, verify, prune, adopt. Every write is atomic.

Copies are made into unique temp files beside their final names (``agent.local.hashing``), checked
against the source's sha256, and only then renamed into place — companions first, the model file
last, so a model file under a version name means the whole version is there. A restore never
destroys bytes that exist nowhere else: a current file that matches no intact copy is renamed
aside to ``<stem>_replaced-<timestamp><ext>`` first.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from agent import progress
from agent.config import Config, ModelConfig
from agent.errors import AgentError, CheckFailed, ModelFileError, NotEnoughSpace
from agent.faultpoints import crash_point
from agent.local.catalog import (
    Catalog,
    Entry,
    entry_for_file,
    link_companions,
    load_catalog,
    now_utc,
)
from agent.local.hashing import HashCache, copy_to_temp, fsync_dir, remove_stale_temps
from agent.progress import GIB, human_size
from agent.rules.naming import backup_name, identify, version_name
from agent.rules.retention import Decision

if TYPE_CHECKING:
    from agent.local.restore import RestoreResult

log = logging.getLogger(__name__)


KINDS = {"pre-update": "backup", "version": "version"}


@dataclass(frozen=True)
class CopyState:
    entry: Entry
    state: str  # ok | corrupted | missing
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackupResult:
    model: str
    kind: str
    entries: tuple[Entry, ...]  # what was written (model file last); empty when skipped
    skipped: bool
    message: str
    warnings: tuple[str, ...] = ()


@dataclass
class _Planned:
    """A file being copied: temp written and verified, waiting to be renamed into place."""

    source: Path
    dest: Path
    temp: Path
    sha256: str
    companion: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def check_source(path: Path, what: str = "model file") -> os.stat_result:
    """The stat of a file we are about to copy, or a ModelFileError that says what is wrong."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelFileError(
            f"{what} {path} does not exist; restore it with `model-safety restore` "
            "or fix `file:` in config.yaml"
        ) from None
    except OSError as exc:
        raise ModelFileError(f"cannot access {what} {path}: {exc.strerror}") from None
    if path.is_dir():
        raise ModelFileError(f"{what} {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise ModelFileError(f"{what} {path} is not a regular file")
    if st.st_size == 0:
        raise ModelFileError(f"{what} {path} is empty; refusing to back up an empty checkpoint")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"{what} {path} is not readable; check its permissions")
    return st


class Store:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.models_dir = config.models_dir
        self.state_dir = config.state_dir
        self.cache = HashCache(self.state_dir)
        self._catalog: Catalog | None = None

    # -- state -----------------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            if not self.models_dir.is_dir():
                raise AgentError(
                    f"models_dir {self.models_dir} does not exist or is not a directory; "
                    "create it or fix models_dir in config.yaml"
                )
            self._catalog = load_catalog(self.models_dir, self.config.models, self.cache)
            if self._catalog.rebuilt:
                log.warning("catalog was missing or damaged; rebuilt it from the files")
                self.save()
        return self._catalog

    def save(self) -> None:
        """Persist catalog and hash cache; a read-only models dir only loses the cache."""
        if self._catalog is not None:
            try:
                self._catalog.save()
            except OSError as exc:
                log.warning("cannot save the catalog in %s: %s", self.state_dir, exc)
        self.cache.save()

    def path(self, name: str) -> Path:
        return self.models_dir / name

    def sha256(self, path: Path, *, fresh: bool = False) -> str:
        size = path.stat().st_size
        with progress.bar(f"hashing {path.name}", size) as advance:
            return self.cache.sha256(path, advance, fresh=fresh)

    def _copy(self, src: Path, dest: Path, expected: str | None) -> tuple[Path, str]:
        with progress.bar(f"copying {src.name}", src.stat().st_size) as advance:
            temp, digests = copy_to_temp(src, dest, expected_sha256=expected, progress=advance)
        return temp, digests["sha256"]

    def _file_state(self, entry: Entry, *, fresh: bool) -> str:
        path = self.path(entry.name)
        if not path.is_file():
            return "missing"
        try:
            return "ok" if self.sha256(path, fresh=fresh) == entry.sha256 else "corrupted"
        except OSError:
            return "corrupted"

    def state_of(self, entry: Entry, *, fresh: bool = False) -> CopyState:
        """State of a copy and of its companion copies (a version is only as good as its parts)."""
        state = self._file_state(entry, fresh=fresh)
        problems = [] if state == "ok" else [f"{entry.name}: {state}"]
        for comp_name in entry.companions.values():
            comp = self.catalog.get(comp_name)
            comp_state = self._file_state(comp, fresh=fresh) if comp else "missing"
            if comp_state != "ok":
                problems.append(f"{comp_name}: {comp_state}")
                state = state if state != "ok" else "corrupted"
        return CopyState(entry, state, tuple(problems))

    # -- backup ----------------------------------------------------------------------------
    def backup(
        self,
        model: str | None = None,
        kind: str = "pre-update",
        note: str | None = None,
        *,
        source: str = "manual",
        today: dt.date | None = None,
        allow_failing: bool = False,
    ) -> BackupResult:
        if kind not in KINDS:
            raise AgentError(f"unknown backup kind {kind!r}; use pre-update or version")
        m = self.config.model(model)
        cat_kind = KINDS[kind]
        today = today or dt.date.today()
        self.remove_stale_temps()
        files, warnings = self._sources(m)
        self.check_space(sum(st.st_size for _, _, st in files))

        if cat_kind == "backup":
            date, seq = None, 1
            previous = self.catalog.get(backup_name(m.file))
        else:
            same_day = [e for e in self.catalog.of_model(m.name, "version") if e.date == today]
            previous = same_day[0] if same_day else None
            seq = max((e.seq for e in same_day), default=0) + 1
            while any(
                self.path(version_name(c or m.file, today, seq)).exists() for _, c, _ in files
            ):
                seq += 1
            date = today

        known = [(src, comp, self.cache.lookup(src, st)) for src, comp, st in files]
        if previous is not None and all(sha for _, _, sha in known):
            # Everything is cached: an unchanged model is recognised without reading a byte.
            probe = [_Planned(src, src, src, sha or "", comp) for src, comp, sha in known]
            if self._same_content(previous, probe):
                return self._unchanged(m.name, kind, cat_kind, previous, warnings)

        planned: list[_Planned] = []
        try:
            for src, companion, st in files:
                base = companion or m.file
                dest = self.path(
                    backup_name(base) if date is None else version_name(base, date, seq)
                )
                expected = self.cache.lookup(src, st)
                temp, sha = self._copy(src, dest, expected)
                planned.append(_Planned(src, dest, temp, sha, companion))
                if (src.stat().st_size, src.stat().st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                    raise ModelFileError(f"{src} changed while it was being copied; try again")
                self.cache.remember(src, sha, st)
            if previous is not None and self._same_content(previous, planned):
                return self._unchanged(m.name, kind, cat_kind, previous, warnings)
            warnings.extend(self._check_copies(m, planned, allow_failing))
            crash_point("backup-copied")  # test-only: temps written, nothing renamed yet
            entries = self._commit(m, planned, cat_kind, date, seq, note, source)
        finally:
            for p in planned:
                with suppress(FileNotFoundError):
                    p.temp.unlink()
        self.save()
        return BackupResult(
            m.name, kind, entries, False, f"{m.name}: wrote {entries[-1].name}", tuple(warnings)
        )

    def _check_copies(
        self, m: ModelConfig, planned: list[_Planned], allow_failing: bool
    ) -> list[str]:
        """A backup slot or version is a copy a user restores from, and that local retention
        keeps in place of older ones: one that fails the check (NaN, damaged, unsafe to load)
        must not take the place of a good one, unless the user says so (``allow_failing``: a
        model saved as a whole pickled module, say, which torch's safe loader never reads)."""
        from agent.checks.verdicts import is_checkpoint, verdict_for

        notes = []
        for p in planned:
            if not is_checkpoint(p.dest.name, m, companion=p.companion):
                continue
            verdict = verdict_for(
                self, p.temp, p.sha256, safetensors=p.dest.suffix == ".safetensors"
            )
            if verdict.ok:
                continue
            if allow_failing:
                notes.append(
                    f"{p.dest.name} fails the check ({verdict.reason}); kept locally as asked, "
                    "it will not be pushed"
                )
                continue
            raise CheckFailed(
                f"{m.name}: not backed up: {p.source.name} fails the check: {verdict.reason}. "
                "Nothing was written. Restore a good model (`model-safety restore`), or keep "
                "this copy anyway with `model-safety backup --allow-failing`"
            )
        return notes

    def remove_stale_temps(self) -> list[str]:
        """Remove temp files a killed copy left behind (see hashing.remove_stale_temps), in the
        models dir and the state dir. Under our lock no other writer exists, so every one of our
        temps is a leftover whatever its age; without it only those idle for 10 minutes are."""
        from agent.local.lock import held_by_us

        max_age = 0 if held_by_us(self.state_dir) else 600
        removed = [
            *remove_stale_temps(self.models_dir, max_age),
            *remove_stale_temps(self.state_dir, max_age),
        ]
        for name in removed:
            log.info("removed %s, left behind by an interrupted copy", name)
        return removed

    def _unchanged(
        self, model: str, kind: str, cat_kind: str, previous: Entry, warnings: list[str]
    ) -> BackupResult:
        self.save()
        what = "the backup slot" if cat_kind == "backup" else f"version {previous.name}"
        msg = f"{model}: {what} already holds this content; nothing written"
        return BackupResult(model, kind, (), True, msg, tuple(warnings))

    def _sources(
        self, m: ModelConfig
    ) -> tuple[list[tuple[Path, str | None, os.stat_result]], list[str]]:
        """Files to capture, companions first, model file last."""
        files: list[tuple[Path, str | None, os.stat_result]] = []
        warnings = []
        for comp in m.companions:
            path = self.path(comp)
            if not path.exists():
                warnings.append(f"companion {comp} is missing; the copy is made without it")
                continue
            files.append((path, comp, check_source(path, "companion file")))
        main = self.path(m.file)
        files.append((main, None, check_source(main)))
        return files, warnings

    def check_space(self, needed: int) -> None:
        """Refuse, before anything is written, a write of ``needed`` bytes that would leave less
        than min_free_space_gb free."""
        free = shutil.disk_usage(self.models_dir).free
        keep = int(self.config.min_free_space_gb * GIB)
        if free - needed < keep:
            raise NotEnoughSpace(
                f"not enough space in {self.models_dir}: the copy needs {human_size(needed)}, "
                f"{human_size(free)} are free and min_free_space_gb keeps "
                f"{human_size(keep)}; free space or prune old versions"
            )

    def current_matches(self, model: str | None, entry: Entry) -> bool:
        """Do the current model and its companions hold the content of copy ``entry``? Uses the
        hash cache, so an unchanged model is not read."""
        m = self.config.model(model)
        probe = []
        for path, comp in [*((self.path(c), c) for c in m.companions), (self.path(m.file), None)]:
            if path.is_file():
                probe.append(_Planned(path, path, path, self.sha256(path), comp))
            elif comp is None:
                return False
        return self._same_content(entry, probe)

    def _same_content(self, previous: Entry, planned: list[_Planned]) -> bool:
        if self._file_state(previous, fresh=False) != "ok":
            return False
        model_copy = planned[-1]
        if previous.sha256 != model_copy.sha256:
            return False
        for p in planned[:-1]:
            comp = self.catalog.get(previous.companions.get(p.companion or "", ""))
            if comp is None or comp.sha256 != p.sha256:
                return False
        return set(previous.companions) == {p.companion for p in planned[:-1]}

    def _commit(
        self,
        m: ModelConfig,
        planned: list[_Planned],
        kind: str,
        date: dt.date | None,
        seq: int,
        note: str | None,
        source: str,
    ) -> tuple[Entry, ...]:
        created = now_utc()
        entries = []
        for p in planned:
            os.replace(p.temp, p.dest)
            crash_point("backup-commit")  # test-only: between two renames, catalog not saved
            st = p.dest.stat()
            self.cache.remember(p.dest, p.sha256, st)
            entries.append(
                Entry(
                    p.dest.name,
                    m.name,
                    kind,
                    date,
                    seq,
                    created,
                    st.st_size,
                    p.sha256,
                    note,
                    source,
                    companion=p.companion,
                )
            )
        fsync_dir(self.models_dir)
        links = {e.companion: e.name for e in entries if e.companion}
        entries[-1] = replace(entries[-1], companions=links)
        if kind == "backup":
            old = self.catalog.get(entries[-1].name)
            for stale in set(old.companions.values()) - set(links.values()) if old else ():
                self.catalog.remove(stale)
        for e in entries:
            self.catalog.add(e)
        return tuple(entries)

    # -- restore ---------------------------------------------------------------------------
    def restore(
        self, model: str | None = None, source: str | None = None, discard_current: bool = False
    ) -> RestoreResult:
        """Put a copy back as the current file (see agent.local.restore)."""
        from agent.local.restore import restore_model

        return restore_model(self, model, source, discard_current)

    # -- inspection ------------------------------------------------------------------------
    def versions(self, model: str | None = None, *, fresh: bool = False) -> list[CopyState]:
        """Copies of a model (backup slot, versions, kept-aside files), newest first."""
        m = self.config.model(model)
        states = [self.state_of(e, fresh=fresh) for e in self.catalog.of_model(m.name)]
        self.save()
        return states

    def verify(self, model: str | None = None) -> list[CopyState]:
        """Re-read every copy (cache ignored) and compare it with its catalog entry."""
        models = [self.config.model(model)] if model else list(self.config.models)
        states = [
            self.state_of(e, fresh=True) for m in models for e in self.catalog.of_model(m.name)
        ]
        self.save()
        return states

    # -- retention -------------------------------------------------------------------------
    def prune(
        self,
        model: str | None = None,
        *,
        dry_run: bool = False,
        pins: Mapping[str, str] | None = None,
        today: dt.date | None = None,
    ) -> list[Decision]:
        """Apply local retention (see agent.local.prune)."""
        from agent.local.prune import prune_local

        return prune_local(self, model, dry_run=dry_run, pins=pins, today=today)

    # -- files obtained elsewhere ----------------------------------------------------------
    def adopt(
        self,
        path: Path,
        *,
        sha256: str | None = None,
        note: str | None = None,
        source: str = "adopted",
        created: dt.datetime | None = None,
    ) -> Entry:
        """Register a file already placed in models_dir under one of our names (e.g. a version
        ``pull`` downloaded). ``sha256``: a hash the caller verified while writing the file;
        without it the file is hashed here. Companion links are filled in once both the
        companion copies and the model file are adopted (in any order)."""
        path = Path(path)
        if path.parent.resolve() != self.models_dir.resolve():
            raise AgentError(f"{path} is not directly inside {self.models_dir}")
        ident = identify(path.name, self.config.models)
        if ident is None or ident.kind == "current":
            raise AgentError(f"{path.name} is not a backup or version name of a configured model")
        st = check_source(path, "file")
        if sha256 is None:
            sha256 = self.sha256(path, fresh=True)
        else:
            self.cache.remember(path, sha256, st)
        entry = entry_for_file(path, ident, sha256, source=source, note=note)
        if created is not None:
            entry = replace(entry, created=created)
        self.catalog.add(entry)
        link_companions(self.catalog)
        self.save()
        return self.catalog.entries[entry.name]

    def status(self, model: str | None = None) -> dict[str, object]:
        from agent.local.schedule import status_report

        return status_report(self, model)
