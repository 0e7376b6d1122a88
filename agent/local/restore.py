"""Restore: put an intact copy back as the current model, with its companions.

Candidates are tried newest first (or the one asked for); each is copied to temp files beside the
current names and checked against its catalog sha256 in the same pass, so a corrupted or missing
copy is skipped (and named) before anything is touched. Then a current file whose content exists
in no intact copy is renamed aside (``<stem>_replaced-<timestamp><ext>``), and the temps are
renamed into place, companions first, the model file last.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import ModelConfig
from agent.errors import NothingToRestore
from agent.faultpoints import crash_point
from agent.local.catalog import Entry, entry_for_dir, entry_for_file
from agent.local.copies import heal_from_local
from agent.local.hashing import HashMismatch, Staged, fsync_dir
from agent.local.tree import discard as discard_temp
from agent.local.tree import put_in_place
from agent.rules.naming import identify, replaced_name
from providers import fileio

if TYPE_CHECKING:
    from agent.local.store import Store


@dataclass(frozen=True)
class RestoreResult:
    model: str
    restored_from: Entry | None
    kept_aside: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # "name: why" for each copy passed over
    warnings: tuple[str, ...] = ()
    message: str = ""


def candidates(store: Store, m: ModelConfig, source: str | None) -> tuple[list[Entry], bool]:
    """Copies to try, in order, and whether the choice was explicit (no fallback)."""
    copies = store.catalog.of_model(m.name)
    if source in (None, "latest"):
        ordered = sorted(
            (e for e in copies if e.kind in ("backup", "version")),
            key=lambda e: e.created,
            reverse=True,
        )
        return ordered, False
    if source == "backup":
        return [e for e in copies if e.kind == "backup"], True
    try:
        day = dt.date.fromisoformat(source)
    except ValueError:
        day = None
    if day is not None:
        return [e for e in copies if e.kind == "version" and e.date == day], False
    entry = store.catalog.get(source)
    if entry is None or entry.model != m.name:
        raise NothingToRestore(
            f"--from {source!r} is not backup, latest, a date (YYYY-MM-DD) or a file of "
            f"{m.name} in {store.models_dir}; see `model-safety list {m.name}`"
        )
    if entry.companion is not None:
        raise NothingToRestore(f"{source} is a companion copy; name the model file instead")
    return [entry], True


def restore_model(
    store: Store, model: str | None = None, source: str | None = None, discard_current: bool = False
) -> RestoreResult:
    m = store.config.model(model)
    store.remove_stale_temps()
    tries, explicit = candidates(store, m, source)
    if not tries:
        raise NothingToRestore(
            f"no copy of {m.name} matches --from {source or 'latest'}; "
            f"see `model-safety list {m.name}`"
        )
    skipped: list[str] = []
    healed: list[str] = []
    for entry in tries:
        planned: list[Staged] = []
        try:
            try:
                planned = _stage(store, m, entry)
            except (HashMismatch, FileNotFoundError):
                # a copy is known by its content: another local file may hold the same bytes
                lines = heal_parts(store, entry)
                if not lines:
                    raise
                healed += lines
                planned = _stage(store, m, entry)
        except (HashMismatch, FileNotFoundError) as exc:
            why = "missing" if isinstance(exc, FileNotFoundError) else "corrupted"
            skipped.append(f"{entry.name}: {why}")
            if explicit:
                raise NothingToRestore(
                    f"{entry.name} is {why} ({exc}); run `model-safety restore {m.name}` "
                    "without --from to use the newest intact copy"
                ) from None
            continue
        try:
            problem = _check_problem(store, m, entry, planned[-1].temp)
            if problem:
                skipped.append(f"{entry.name}: {problem}")
                if explicit:
                    raise NothingToRestore(f"{entry.name} {problem}; choose another copy")
                continue
            result = _switch(store, m, entry, planned, discard_current, skipped)
            return dataclasses.replace(result, warnings=(*healed, *result.warnings))
        finally:
            for p in planned:
                discard_temp(p.temp)
    raise NothingToRestore(
        f"no intact copy of {m.name} left: "
        + "; ".join(skipped)
        + ". Pull one from a remote or look at the files by hand"
    )


def heal_parts(store: Store, entry: Entry) -> list[str]:
    """Put back, from other local files with the same content, the files of copy ``entry`` that
    are missing or damaged; one line per file healed. Empty when one cannot be healed."""
    lines: list[str] = []
    if entry.is_dir:  # file by file, from any local file with the same content
        from agent.local.tree_heal import heal_tree

        healed, failed = heal_tree(store, entry)
        return healed if not failed else []
    for name in [*entry.companions.values(), entry.name]:
        part = store.catalog.get(name)
        if part is None:
            return []
        if store._file_state(part, fresh=True) == "ok":
            continue
        healed = heal_from_local(store, name, part.sha256, part.size)
        if healed.source is None:
            return []
        lines.append(f"{name} was damaged or missing; healed from {healed.source}")
    return lines


def _stage(store: Store, m: ModelConfig, entry: Entry) -> list[Staged]:
    """Copy a version's files to temps beside their current names, verified."""
    planned: list[Staged] = []
    try:
        parts = [(comp, name) for comp, name in entry.companions.items()]
        parts.append((None, entry.name))
        for companion, name in parts:
            copy_entry = store.catalog.get(name)
            if copy_entry is None:
                raise FileNotFoundError(f"{name} is not in the catalog")
            src = store.path(name)
            dest = store.path(companion or m.file)
            if copy_entry.is_dir:
                temp, files = store.copy_tree(src, dest, copy_entry.files)
                planned.append(Staged(src, dest, temp, copy_entry.sha256, None, {"files": files}))
                continue
            temp, sha = store._copy(src, dest, copy_entry.sha256)
            planned.append(Staged(src, dest, temp, sha, companion))
    except BaseException:
        for p in planned:
            discard_temp(p.temp)
        raise
    return planned


# Entries whose sha256 was taken from the file itself after the catalog was lost (or from a
# file copied in by hand) cannot reveal corruption; for them a checkpoint must also pass the check.
UNVERIFIED_SOURCES = ("rebuilt", "found")


def _check_problem(store: Store, m: ModelConfig, entry: Entry, staged: Path) -> str | None:
    from agent.checks.verdicts import is_checkpoint, verdict_for

    if entry.source not in UNVERIFIED_SOURCES or not is_checkpoint(entry.name, m, companion=None):
        return None
    if entry.is_dir:
        from agent.checks.directory import check_tree

        tree = check_tree(store, staged, entry.files)
        return None if tree.ok else f"fails the check ({tree.reason})"
    verdict = verdict_for(
        store, staged, entry.sha256, safetensors=entry.name.endswith(".safetensors")
    )
    return None if verdict.ok else f"fails the check ({verdict.reason})"


def _switch(
    store: Store,
    m: ModelConfig,
    entry: Entry,
    planned: list[Staged],
    discard: bool,
    skipped: list[str],
) -> RestoreResult:
    warnings = [
        f"{entry.name} has no copy of companion {c}; left the current {c} as it is"
        for c in m.companions
        if c not in entry.companions
    ]
    current_shas = {}
    for p in planned:
        if p.dest.is_file() or ("files" in p.extra and p.dest.is_dir()):
            current_shas[p.dest] = store.sha256(p.dest)
    if all(current_shas.get(p.dest) == p.sha256 for p in planned):
        return RestoreResult(
            m.name,
            entry,
            (),
            tuple(skipped),
            tuple(warnings),
            f"{m.name}: current already matches {entry.name}; nothing to do",
        )
    kept: list[str] = []
    when = dt.datetime.now()
    for p in planned:
        sha = current_shas.get(p.dest)
        if sha is None or sha == p.sha256 or discard or _kept_elsewhere(store, sha):
            continue
        note = f"current before restoring {entry.name}"
        kept.append(set_aside(store, p.dest, sha, when, source="restore", note=note))
    crash_point("restore-switch")  # test-only: current files set aside, copies not yet in place
    for p in planned:
        files: dict[str, tuple[int, str]] = p.extra.get("files", {})  # type: ignore[assignment]
        if files:
            old = put_in_place(p.temp, p.dest)  # still there: its content is kept elsewhere
            if old is not None:
                discard_temp(old)
            for rel, (_, sha) in files.items():
                store.cache.remember(p.dest / rel, sha)
            continue
        fileio.replace(p.temp, p.dest)
        store.cache.remember(p.dest, p.sha256)
    fsync_dir(store.models_dir)
    store.save()
    msg = f"{m.name}: restored {m.file} from {entry.name}"
    return RestoreResult(m.name, entry, tuple(kept), tuple(skipped), tuple(warnings), msg)


def set_aside(
    store: Store, path: Path, sha: str, when: dt.datetime, *, source: str, note: str
) -> str:
    """Rename ``path`` (whose content hashes to ``sha``) to ``<stem>_replaced-<when><ext>`` (a
    directory: ``<dir>_replaced-<when>/``) and catalogue it there: bytes that may exist nowhere
    else leave the real name but stay."""
    is_dir = path.is_dir()
    aside = store.path(replaced_name(path.name, when, directory=is_dir))
    files = store.manifest(path) if is_dir else {}
    fileio.replace(path, aside)
    ident = identify(aside.name, store.config.models)
    if is_dir:
        for rel, (_, file_sha) in files.items():
            store.cache.remember(aside / rel, file_sha)
        if ident is not None:
            entry = entry_for_dir(aside, ident, files, source=source, note=note)
            store.catalog.add(entry)
        return aside.name
    store.cache.remember(aside, sha)
    if ident is not None:
        store.catalog.add(entry_for_file(aside, ident, sha, source=source, note=note))
    return aside.name


def _kept_elsewhere(store: Store, sha: str) -> bool:
    """Is there an intact copy in the catalog with this content?"""
    return any(e.sha256 == sha and store._file_state(e, fresh=False) == "ok" for e in store.catalog)
