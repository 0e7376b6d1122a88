"""What copies exist in the models dir and what their bytes should hash to.

The catalog lives in ``<models_dir>/.model-safety/catalog.json``. It is a convenience, never the
only truth: when it is missing or damaged it is rebuilt from the file names (``agent.rules.naming``)
and the files' current hashes, so losing it never blocks a restore. Files a person copied in by hand
under our naming scheme are picked up the same way (``source: "found"``).

``Entry`` is also the entry format of the remote catalog (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import ModelFileError
from agent.local.hashing import HashCache, atomic_write_bytes
from agent.local.tree import walk_files
from agent.rules import manifest
from agent.rules.codec import codec_of
from agent.rules.naming import Identity, ModelLike, identify, listing_key

if TYPE_CHECKING:
    from agent.local.compress import Digests

log = logging.getLogger(__name__)

FORMAT = "model-safety/catalog"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Entry:
    name: str  # file name in models_dir
    model: str
    kind: str  # "backup" | "version" | "replaced"
    date: dt.date | None
    seq: int
    created: dt.datetime
    size: int
    sha256: str
    note: str | None = None
    source: str = "manual"  # manual | run | restore | rebuilt | found | pull:<remote> ...
    companion: str | None = None  # for a companion's copy: the companion's current name
    # For a model file: companion current name -> the file name of its copy in this version.
    companions: Mapping[str, str] = field(default_factory=dict)
    md5: str | None = None
    # A directory copy's manifest: every file in it (relative path -> (size, sha256)); then
    # ``sha256`` is the manifest's identity and ``size`` the total (agent.rules.manifest).
    files: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    # How the file is stored: None = as is; "zstd" = one plain zstd frame (``zstd -d`` restores
    # it). ``size``/``sha256`` stay the model bytes' identity; ``stored_size``/``stored_sha256``
    # are the stored file's own (None when stored as is).
    codec: str | None = None
    stored_size: int | None = None
    stored_sha256: str | None = None

    @property
    def is_dir(self) -> bool:
        return bool(self.files)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["date"] = self.date.isoformat() if self.date else None
        data["created"] = self.created.isoformat()
        data["companions"] = dict(self.companions)
        data.pop("files")
        for key in ("codec", "stored_size", "stored_sha256"):
            if data[key] is None:
                data.pop(key)  # an uncompressed entry reads as before
        if self.files:
            data["files"] = manifest.to_json(self.files)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        created = dt.datetime.fromisoformat(data["created"])
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        return cls(
            name=str(data["name"]),
            model=str(data["model"]),
            kind=str(data["kind"]),
            date=dt.date.fromisoformat(data["date"]) if data.get("date") else None,
            seq=int(data.get("seq", 1)),
            created=created,
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            note=data.get("note"),
            source=str(data.get("source", "manual")),
            companion=data.get("companion"),
            companions=dict(data.get("companions") or {}),
            md5=data.get("md5"),
            files=manifest.from_json(data.get("files") or {}),
            codec=data.get("codec"),
            stored_size=int(data["stored_size"]) if data.get("stored_size") is not None else None,
            stored_sha256=data.get("stored_sha256"),
        )

    @property
    def disk_size(self) -> int:
        """Bytes the copy takes where it is stored."""
        return self.stored_size if self.stored_size is not None else self.size

    @property
    def sort_key(self) -> tuple[dt.date, int, dt.datetime]:
        return listing_key(self.date, self.seq, self.created)


class Catalog:
    FILE = "catalog.json"

    def __init__(self, state_dir: Path, entries: Mapping[str, Entry] | None = None) -> None:
        self.state_dir = state_dir
        self.entries: dict[str, Entry] = dict(entries or {})
        self.rebuilt = False  # True when the file was missing or damaged this time
        # Set when the saved file existed but could not be read (rebuilt from the files: notes
        # and creation times are lost); ``verify`` reports it as a problem.
        self.damaged: str | None = None
        # Only a changed catalog is written, so read-only commands (list, verify, status) running
        # beside a `run` never write back a catalog older than the one `run` just saved.
        self.dirty = False

    @property
    def path(self) -> Path:
        return self.state_dir / self.FILE

    @classmethod
    def read(cls, state_dir: Path) -> Catalog | None:
        """The saved catalog, or None when it is missing or damaged."""
        try:
            doc = json.loads((state_dir / cls.FILE).read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError("not a model-safety catalog")
            entries = {e["name"]: Entry.from_dict(e) for e in doc["files"]}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("catalog %s is damaged (%s); rebuilding it from the files", state_dir, exc)
            return None
        return cls(state_dir, entries)

    def save(self) -> None:
        if not self.dirty:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": FORMAT,
            "version": 1,
            "files": [e.to_dict() for e in sorted(self.entries.values(), key=lambda e: e.name)],
        }
        atomic_write_bytes(self.path, json.dumps(doc, indent=1).encode("utf-8"))
        self.dirty = False

    def add(self, entry: Entry) -> None:
        if self.entries.get(entry.name) != entry:
            self.entries[entry.name] = entry
            self.dirty = True

    def remove(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.dirty = True

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)

    def of_model(self, model: str, kind: str | None = None) -> list[Entry]:
        """Model-file entries (not companion copies) of ``model``, newest first."""
        found = [
            e
            for e in self.entries.values()
            if e.model == model and e.companion is None and (kind is None or e.kind == kind)
        ]
        return sorted(found, key=lambda e: e.sort_key, reverse=True)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries.values())


def entry_for_file(
    path: Path, ident: Identity, sha256: str, *, source: str, note: str | None = None
) -> Entry:
    st = path.stat()
    return Entry(
        name=path.name,
        model=ident.model,
        kind=ident.kind,
        date=ident.date,
        seq=ident.seq,
        created=dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
        size=st.st_size,
        sha256=sha256,
        note=note,
        source=source,
        companion=ident.companion,
    )


def entry_for_compressed(
    path: Path, ident: Identity, *, source: str, note: str | None = None
) -> Entry:
    """The entry of a compressed copy found on disk: decompressed once to learn its identity.
    A file that does not decompress raises HashMismatch (an OSError)."""
    from agent.local.compress import scan

    digests = scan(path)
    entry = entry_for_file(path, ident, digests.sha256, source=source, note=note)
    return with_digests(entry, path.name, digests)


def with_digests(entry: Entry, name: str, digests: Digests) -> Entry:
    return replace(
        entry,
        name=name,
        size=digests.size,
        sha256=digests.sha256,
        codec=codec_of(name),
        stored_size=digests.stored_size,
        stored_sha256=digests.stored_sha256,
    )


def entry_for_dir(
    path: Path,
    ident: Identity,
    files: Mapping[str, tuple[int, str]],
    *,
    source: str,
    note: str | None = None,
) -> Entry:
    """The entry of a directory copy with manifest ``files``."""
    return Entry(
        name=path.name,
        model=ident.model,
        kind=ident.kind,
        date=ident.date,
        seq=ident.seq,
        created=dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC),
        size=manifest.total_size(files),
        sha256=manifest.identity(files),
        note=note,
        source=source,
        files=dict(files),
    )


def manifest_of(root: Path, cache: HashCache, *, fresh: bool = False) -> dict[str, tuple[int, str]]:
    """The manifest of directory ``root`` as it is now (hashes from the cache unless ``fresh``)."""
    return {
        rel: ((root / rel).stat().st_size, cache.sha256(root / rel, fresh=fresh))
        for rel in walk_files(root)
    }


def load_catalog(models_dir: Path, models: Sequence[ModelLike], cache: HashCache) -> Catalog:
    """The catalog, reconciled with the files on disk.

    Missing or damaged: rebuilt from every file whose name is ours (hashing what the cache does
    not know). Present: files of ours that it does not list are added as ``found``. Entries whose
    file is gone stay, so ``list`` and ``verify`` can report them as missing.
    """
    state_dir = models_dir / ".model-safety"
    catalog = Catalog.read(state_dir)
    was_lost = catalog is None
    if catalog is None:
        catalog = Catalog(state_dir)
        if (state_dir / Catalog.FILE).exists():
            catalog.damaged = f"{state_dir / Catalog.FILE} was unreadable; rebuilt from the files"
    source = "rebuilt" if was_lost else "found"
    changed = False
    try:
        names = sorted(p.name for p in models_dir.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        names = []
    for name in names:
        if name in catalog.entries:
            continue
        ident = identify(name, models)
        if ident is None or ident.kind == "current":
            continue
        path = models_dir / name
        if not (path.is_dir() if ident.directory else path.is_file()):
            continue
        try:
            if ident.directory:
                files = manifest_of(path, cache)
                catalog.add(entry_for_dir(path, ident, files, source=source))
            elif ident.codec is not None:
                entry = entry_for_compressed(path, ident, source=source)
                catalog.add(entry)
                cache.remember(path, entry.stored_sha256 or "")
            else:
                catalog.add(entry_for_file(path, ident, cache.sha256(path), source=source))
        except (OSError, ModelFileError) as exc:
            log.warning("cannot read %s to catalog it: %s", path, exc)
            continue
        changed = True
    if changed:
        link_companions(catalog)
        catalog.rebuilt = was_lost
    return catalog


def link_companions(catalog: Catalog) -> None:
    """Fill a model entry's ``companions`` from companion copies of the same kind/date/seq."""
    for entry in list(catalog):
        if entry.companion is not None or entry.kind not in ("backup", "version"):
            continue
        links = dict(entry.companions)
        for other in catalog:
            if (
                other.model == entry.model
                and other.companion is not None
                and other.kind == entry.kind
                and other.date == entry.date
                and other.seq == entry.seq
            ):
                links.setdefault(other.companion, other.name)
        if links != dict(entry.companions):
            catalog.add(replace(entry, companions=links))
