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
import threading
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

from agent import progress
from agent.config import Config
from agent.errors import AgentError, ModelFileError, NotEnoughSpace
from agent.local.catalog import (
    Catalog,
    Entry,
    entry_for_compressed,
    entry_for_file,
    link_companions,
    load_catalog,
)
from agent.local.hashing import HashCache, Staged, copy_to_temp
from agent.local.ranges import LocalRanges
from agent.local.stored import file_state as compressed_state
from agent.local.stored import transcode
from agent.local.tree import remove_stale_temps, stage_tree
from agent.progress import GIB, human_size
from agent.rules import manifest
from agent.rules.codec import codec_of
from agent.rules.naming import identify
from providers.journal import DOWNLOADS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyState:
    entry: Entry
    state: str  # ok | corrupted | missing
    problems: tuple[str, ...] = ()


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
        raise ModelFileError(
            f"{what} {path} is a directory, not a checkpoint file (for a model saved as a "
            f"directory, write `file: {path.name}/` in config.yaml)"
        )
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
        self.ranges = LocalRanges(self.state_dir)
        self.cache.keep_ranges = self.ranges.put_serialised
        self._catalog: Catalog | None = None
        self._warming: threading.Thread | None = None

    # -- state -----------------------------------------------------------------------------
    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            if not self.models_dir.is_dir():
                raise AgentError(
                    f"models_dir {self.models_dir} does not exist or is not a directory; "
                    "create it or fix models_dir in config.yaml (after a lost disk, "
                    "`model-safety pull` brings the models back from a remote)"
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

    def warm_up(self) -> None:
        """Hash the models' current files in a background thread (nothing to do for those the
        cache knows), so that a push of a freshly fine-tuned model opens its remotes, importing
        the S3 client and listing, while the new bytes are hashed; ``sha256`` waits for it."""
        names = [n for m in self.config.models for n in (*m.companions, m.file)]
        paths = [p for p in map(self.path, names) if p.is_file()]

        def work() -> None:
            for path in paths:
                with suppress(OSError):  # gone or unreadable: the caller's own read says so
                    if self.cache.lookup(path) is None:
                        with progress.bar(f"hashing {path.name}", path.stat().st_size) as advance:
                            self.cache.sha256(path, advance)

        self._warming = threading.Thread(target=work, name="hash-warm-up", daemon=True)
        self._warming.start()

    def sha256(self, path: Path, *, fresh: bool = False) -> str:
        """A file's sha256; a directory's manifest identity (agent.rules.manifest)."""
        if self._warming is not None:
            self._warming.join()
            self._warming = None
        if path.is_dir():
            return manifest.identity(self.manifest(path, fresh=fresh))
        size = path.stat().st_size
        with progress.bar(f"hashing {path.name}", size) as advance:
            return self.cache.sha256(path, advance, fresh=fresh)

    def manifest(self, root: Path, *, fresh: bool = False) -> dict[str, tuple[int, str]]:
        """Every file of directory ``root``: relative path -> (size, sha256)."""
        from agent.local.tree import walk_files

        return {
            rel: ((root / rel).stat().st_size, self.sha256(root / rel, fresh=fresh))
            for rel in walk_files(root)
        }

    def copy_tree(
        self, src: Path, dest: Path, expected: manifest.Manifest | None = None
    ) -> tuple[Path, dict[str, tuple[int, str]]]:
        """Stage directory ``src`` as a verified hidden temp directory beside ``dest``."""
        return stage_tree(src, dest, self._copy, expected, known=self.cache.lookup)

    def _copy(self, src: Path, dest: Path, expected: str | None) -> tuple[Path, str]:
        if codec_of(src.name) != codec_of(dest.name):  # a compressed copy on one side
            temp, digests = transcode(self, src, dest, expected)
            return temp, digests.sha256
        with progress.bar(f"copying {src.name}", src.stat().st_size) as advance:
            temp, digests = copy_to_temp(
                src, dest, algos=("sha256", "ranges"), expected_sha256=expected, progress=advance
            )
        self.ranges.put_serialised(digests["sha256"], digests["ranges"])
        return temp, digests["sha256"]

    def _tree_problems(self, entry: Entry, *, fresh: bool) -> list[str]:
        """Per file, how a directory copy differs from its manifest (empty: intact)."""
        path = self.path(entry.name)
        if not path.is_dir():
            return [f"{entry.name}: missing"]
        try:
            found = self.manifest(path, fresh=fresh)
        except (OSError, ModelFileError) as exc:
            return [f"{entry.name}: unreadable ({exc})"]
        return manifest.compare(entry.files, found).problems(entry.name)

    def _file_state(self, entry: Entry, *, fresh: bool) -> str:
        path = self.path(entry.name)
        if entry.is_dir:
            problems = self._tree_problems(entry, fresh=fresh)
            return "ok" if not problems else "missing" if not path.is_dir() else "corrupted"
        if entry.codec is not None:
            return compressed_state(self, entry, fresh=fresh)
        if not path.is_file():
            return "missing"
        try:
            return "ok" if self.sha256(path, fresh=fresh) == entry.sha256 else "corrupted"
        except OSError:
            return "corrupted"

    def state_of(self, entry: Entry, *, fresh: bool = False) -> CopyState:
        """State of a copy and of its companion copies (a version is only as good as its parts)."""
        if entry.is_dir:
            problems = self._tree_problems(entry, fresh=fresh)
            path = self.path(entry.name)
            state = "ok" if not problems else "missing" if not path.is_dir() else "corrupted"
        else:
            state = self._file_state(entry, fresh=fresh)
            problems = [] if state == "ok" else [f"{entry.name}: {state}"]
        for comp_name in entry.companions.values():
            comp = self.catalog.get(comp_name)
            comp_state = self._file_state(comp, fresh=fresh) if comp else "missing"
            if comp_state != "ok":
                problems.append(f"{comp_name}: {comp_state}")
                state = state if state != "ok" else "corrupted"
        return CopyState(entry, state, tuple(problems))

    def download_journal_dirs(self) -> list[Path]:
        """Every remote's download-journal directory (``remotes/<name>/downloads`` in the state
        dir), whether or not it exists yet; the remote is the directory's parent's name."""
        remotes = self.state_dir / "remotes"
        return [d / DOWNLOADS for d in sorted(remotes.iterdir())] if remotes.is_dir() else []

    def remove_stale_temps(self) -> list[str]:
        """Remove temp files a killed copy left behind (see hashing.remove_stale_temps), in the
        models dir, the state dir and its range-hash store. Under our lock no other writer
        exists, so every one of our temps is a leftover whatever its age; without it only those
        idle for 10 minutes are."""
        from agent.local.lock import held_by_us

        max_age = 0 if held_by_us(self.state_dir) else 600
        removed = [
            *remove_stale_temps(self.models_dir, max_age),
            *remove_stale_temps(self.state_dir, max_age),
        ]
        if self.ranges.dir.is_dir():
            removed += remove_stale_temps(self.ranges.dir, max_age)
        for name in removed:
            log.info("removed %s, left behind by an interrupted copy", name)
        return removed

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
            if path.is_file() or (comp is None and m.directory and path.is_dir()):
                probe.append(Staged(path, path, path, self.sha256(path), comp))
            elif comp is None:
                return False
        return self._same_content(entry, probe)

    def _same_content(self, previous: Entry, planned: list[Staged]) -> bool:
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
        if ident.codec is not None:  # a pulled .zst: its model bytes' identity, decompressed
            entry = entry_for_compressed(path, ident, source=source, note=note)
            self.cache.remember(path, entry.stored_sha256 or "", st)
        else:
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
