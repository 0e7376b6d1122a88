"""``backup``: the pre-update slot (``<stem>_backup<ext>``) or a dated version
(``<stem>_vYYYY-MM-DD[.N]<ext>``) of a model and its companions.

Each file is copied into a unique temp beside its final name, verified against the source's
sha256, checked (a copy that fails the checker must not take the place of a good one), and only
then renamed into place: companions first, the model file last, so a model file under a version
name means the whole version is there. Unchanged content is recognised from the hash cache
without reading a byte.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.config import ModelConfig
from agent.errors import AgentError, CheckFailed, ModelFileError
from agent.faultpoints import crash_point
from agent.local.catalog import Entry, now_utc
from agent.local.hashing import Staged, fsync_dir
from agent.local.store import Store, check_source
from agent.local.tree import check_dir_source, discard, put_in_place
from agent.rules import manifest
from agent.rules.codec import ZSTD, stored_name
from agent.rules.naming import backup_name, version_name
from providers import fileio

KINDS = {"pre-update": "backup", "version": "version"}

Source = tuple[Path, str | None, os.stat_result]  # (path, companion name or None, stat)


@dataclass(frozen=True)
class BackupResult:
    model: str
    kind: str
    entries: tuple[Entry, ...]  # what was written (model file last); empty when skipped
    skipped: bool
    message: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Request:
    kind: str  # "pre-update" | "version"
    note: str | None
    source: str  # who asked: manual, run, api, guard...
    today: dt.date
    allow_failing: bool = False


@dataclass(frozen=True)
class _Slot:
    """Where the copy goes: the catalog kind, and for a version its date and same-day number."""

    kind: str
    date: dt.date | None
    seq: int
    previous: Entry | None  # what the slot (or the day's newest version) holds now


def backup_model(
    store: Store,
    model: str | None = None,
    kind: str = "pre-update",
    note: str | None = None,
    *,
    source: str = "manual",
    today: dt.date | None = None,
    allow_failing: bool = False,
) -> BackupResult:
    """The pre-update slot (``kind="pre-update"``) or a dated version (``"version"``)."""
    request = Request(kind, note, source, today or dt.date.today(), allow_failing)
    return take_backup(store, model, request)


def take_backup(store: Store, model: str | None, request: Request) -> BackupResult:
    if request.kind not in KINDS:
        raise AgentError(f"unknown backup kind {request.kind!r}; use pre-update or version")
    m = store.config.model(model)
    store.remove_stale_temps()
    files, warnings, size = _sources(store, m)
    store.check_space(size)
    slot = _slot(store, m, KINDS[request.kind], request.today, files)

    # a directory is known by its manifest, from the hash cache of each file in it
    known = [
        (src, comp, store.sha256(src) if _is_tree(m, comp) else store.cache.lookup(src, st))
        for src, comp, st in files
    ]
    if slot.previous is not None and all(sha for _, _, sha in known):
        # Everything is cached: an unchanged model is recognised without reading a byte.
        probe = [Staged(src, src, src, sha or "", comp) for src, comp, sha in known]
        if store._same_content(slot.previous, probe):
            return _unchanged(store, m.name, request, slot, warnings)

    planned: list[Staged] = []
    try:
        for src, companion, st in files:
            tree = _is_tree(m, companion)
            name = _copy_name(companion or m.file, slot, tree)
            if tree:
                temp, files_in = store.copy_tree(src, store.path(name))
                staged = Staged(src, store.path(name), temp, manifest.identity(files_in))
                staged.extra["files"] = files_in
                planned.append(staged)
            else:
                temp, sha = store._copy(src, store.path(name), store.cache.lookup(src, st))
                planned.append(Staged(src, store.path(name), temp, sha, companion))
            if (src.stat().st_size, src.stat().st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                raise ModelFileError(f"{src} changed while it was being copied; try again")
            if not tree:  # a directory's stat does not change when a file in it does
                store.cache.remember(src, planned[-1].sha256, st)
        if slot.previous is not None and store._same_content(slot.previous, planned):
            return _unchanged(store, m.name, request, slot, warnings)
        warnings.extend(_check_copies(store, m, planned, request.allow_failing))
        crash_point("backup-copied")  # test-only: temps written, nothing renamed yet
        entries = _commit(store, m, planned, slot, request)
    finally:
        for p in planned:
            discard(p.temp)
    store.save()
    message = f"{m.name}: wrote {entries[-1].name}"
    return BackupResult(m.name, request.kind, entries, False, message, tuple(warnings))


def _both_forms(name: str) -> tuple[str, str]:
    """A version's name plain and compressed: either one takes its (date, seq)."""
    return name, stored_name(name, ZSTD)


def _is_tree(m: ModelConfig, companion: str | None) -> bool:
    return companion is None and m.directory


def _copy_name(base: str, slot: _Slot, directory: bool) -> str:
    if slot.date is None:
        return backup_name(base, directory)
    return version_name(base, slot.date, slot.seq, directory)


def _slot(store: Store, m: ModelConfig, kind: str, today: dt.date, files: list[Source]) -> _Slot:
    if kind == "backup":
        return _Slot(kind, None, 1, store.catalog.get(backup_name(m.file)))
    same_day = [e for e in store.catalog.of_model(m.name, "version") if e.date == today]
    seq = max((e.seq for e in same_day), default=0) + 1
    while any(
        os.path.lexists(store.path(name))
        for _, c, _ in files
        for name in _both_forms(version_name(c or m.file, today, seq, _is_tree(m, c)))
    ):
        seq += 1
    return _Slot(kind, today, seq, same_day[0] if same_day else None)


def _check_copies(
    store: Store, m: ModelConfig, planned: list[Staged], allow_failing: bool
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
        if "files" in p.extra:
            from agent.checks.directory import check_tree

            verdict: Any = check_tree(store, p.temp, p.extra["files"])  # type: ignore[arg-type]
        else:
            verdict = verdict_for(
                store, p.temp, p.sha256, safetensors=p.dest.suffix == ".safetensors"
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


def _unchanged(
    store: Store, model: str, request: Request, slot: _Slot, warnings: list[str]
) -> BackupResult:
    store.save()
    assert slot.previous is not None
    what = "the backup slot" if slot.kind == "backup" else f"version {slot.previous.name}"
    msg = f"{model}: {what} already holds this content; nothing written"
    return BackupResult(model, request.kind, (), True, msg, tuple(warnings))


def _sources(store: Store, m: ModelConfig) -> tuple[list[Source], list[str], int]:
    """Files to capture, companions first, model file (or directory) last; and their size."""
    files: list[Source] = []
    warnings = []
    for comp in m.companions:
        path = store.path(comp)
        if not path.exists():
            warnings.append(f"companion {comp} is missing; the copy is made without it")
            continue
        files.append((path, comp, check_source(path, "companion file")))
    main = store.path(m.file)
    size = sum(st.st_size for _, _, st in files)
    if m.directory:
        size += check_dir_source(main)
        files.append((main, None, main.stat()))
    else:
        files.append((main, None, check_source(main)))
        size += files[-1][2].st_size
    return files, warnings, size


def _commit(
    store: Store, m: ModelConfig, planned: list[Staged], slot: _Slot, request: Request
) -> tuple[Entry, ...]:
    created = now_utc()
    entries = []
    for p in planned:
        files: dict[str, tuple[int, str]] = p.extra.get("files", {})  # type: ignore[assignment]
        if files:
            old = put_in_place(p.temp, p.dest)  # one rename (an exchange over the old slot)
            crash_point("backup-commit")  # test-only: between two renames, catalog not saved
            if old is not None:
                discard(old)
            for rel in files:
                store.cache.remember(p.dest / rel, files[rel][1])
            size = manifest.total_size(files)
        else:
            fileio.replace(p.temp, p.dest)
            crash_point("backup-commit")  # test-only: between two renames, catalog not saved
            store.cache.remember(p.dest, p.sha256, st := p.dest.stat())
            size = st.st_size
        entries.append(
            Entry(
                p.dest.name,
                m.name,
                slot.kind,
                slot.date,
                slot.seq,
                created,
                size,
                p.sha256,
                request.note,
                request.source,
                companion=p.companion,
                files=files,
            )
        )
    fsync_dir(store.models_dir)
    links = {e.companion: e.name for e in entries if e.companion}
    entries[-1] = replace(entries[-1], companions=links)
    if slot.kind == "backup":
        old = store.catalog.get(entries[-1].name)
        for stale in set(old.companions.values()) - set(links.values()) if old else ():
            store.catalog.remove(stale)
    for e in entries:
        store.catalog.add(e)
    return tuple(entries)
