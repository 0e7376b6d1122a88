"""Local copies stored compressed (``<version>.pth.zst``): their state, their plain bytes.

A compressed copy's catalog entry keeps the model bytes' identity (``size``, ``sha256``) and the
stored file's own (``stored_size``, ``stored_sha256``). A shallow check compares the stored file
with its recorded sha256 through the hash cache (no read while size, mtime and inode are
unchanged); a deep one decompresses it and hashes the model bytes, streaming.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from agent import progress
from agent.local import compress
from agent.local.catalog import Entry, with_digests
from agent.local.hashing import fsync_dir, temp_path
from agent.rules.codec import codec_of
from providers import fileio

if TYPE_CHECKING:
    from agent.local.store import Store


def file_state(store: Store, entry: Entry, *, fresh: bool) -> str:
    """ok | corrupted | missing for a compressed copy; ``fresh`` decompresses every byte."""
    path = store.path(entry.name)
    if not path.is_file():
        return "missing"
    try:
        st = path.stat()
        if entry.stored_size is not None and st.st_size != entry.stored_size:
            return "corrupted"
        if not fresh:
            known = store.cache.lookup(path, st)
            if known is not None:
                return "ok" if known == entry.stored_sha256 else "corrupted"
        with progress.bar(f"decompressing {entry.name}", entry.size) as advance:
            digests = compress.scan(path, advance)
    except OSError:  # HashMismatch included: a frame that does not decompress
        return "corrupted"
    good = (digests.sha256, digests.size) == (entry.sha256, entry.size) and (
        entry.stored_sha256 in (None, digests.stored_sha256)
    )
    if good:
        store.cache.remember(path, digests.stored_sha256, st)
    return "ok" if good else "corrupted"


def transcode(
    store: Store, src: Path, dest: Path, expected: str | None
) -> tuple[Path, compress.Digests]:
    """A verified temp beside ``dest`` holding ``src``'s model bytes in ``dest``'s form
    (decompressed for a plain name, compressed for a ``.zst`` one)."""
    if codec_of(src.name) and not codec_of(dest.name):
        size = src.stat().st_size
        with progress.bar(f"decompressing {src.name}", size) as advance:
            return compress.decompress_to_temp(
                src, dest, expected_sha256=expected, progress=advance
            )
    if codec_of(dest.name) and not codec_of(src.name):
        with progress.bar(f"compressing {src.name}", src.stat().st_size) as advance:
            return compress.compress_to_temp(src, dest, expected_sha256=expected, progress=advance)
    raise ValueError(f"nothing to transcode from {src.name} to {dest.name}")


@contextmanager
def plain_path(store: Store, path: Path, sha256: str | None = None) -> Iterator[Path]:
    """A path holding ``path``'s model bytes: ``path`` itself when stored plain; for a
    compressed file, a temp decompressed into the state dir (checked against ``sha256``, or the
    catalog's entry when it is ours), removed afterwards. The checker's loader child, diff and
    the scorer need the real bytes."""
    path = Path(path)
    if codec_of(path.name) is None or not path.is_file():
        yield path
        return
    if sha256 is None and path.parent.resolve() == store.models_dir.resolve():
        entry = store.catalog.get(path.name)
        sha256 = entry.sha256 if entry else None
    store.state_dir.mkdir(parents=True, exist_ok=True)
    dest = store.state_dir / Path(path.name).stem  # the plain name: loaders see a .pth
    temp, _ = transcode(store, path, dest, sha256)
    try:
        yield temp
    finally:
        with suppress(FileNotFoundError):
            temp.unlink()


def remember_healed(store: Store, path: Path, sha256: str) -> None:
    """Record what a heal put back under ``path``: a compressed copy was compressed anew, so its
    stored bytes (and their sha256) may differ from the ones recorded; a plain one is its sha."""
    if codec_of(path.name) is None:
        store.cache.remember(path, sha256)
        return
    digests = compress.scan(path)
    store.cache.remember(path, digests.stored_sha256)
    entry = store.catalog.get(path.name)
    if entry is not None:
        store.catalog.add(with_digests(entry, path.name, digests))


def model_sha256(store: Store, path: Path) -> str | None:
    """The model bytes' sha256 of compressed file ``path`` (its catalog entry's while the stored
    file still matches it, else decompressed); None for a plain file."""
    if codec_of(path.name) is None or not path.is_file():
        return None
    if path.parent.resolve() == store.models_dir.resolve():
        entry = store.catalog.get(path.name)
        if entry is not None and file_state(store, entry, fresh=False) == "ok":
            return entry.sha256
    return compress.scan(path).sha256


def plain_target(store: Store, name: str) -> Path:
    """Where plain bytes meant for ``name`` are written first: ``name`` itself, or for a
    compressed copy a file in the state dir (compressed into place by ``compress_into``)."""
    if codec_of(name) is None:
        return store.path(name)
    store.state_dir.mkdir(parents=True, exist_ok=True)
    # a temp name: one a kill leaves behind is removed like every other temp of ours
    return temp_path(store.state_dir / Path(name).stem)


def compress_into(store: Store, plain: Path, dest: Path, sha256: str) -> None:
    """Compress ``plain`` (checked against ``sha256``) into ``dest`` atomically, then remove
    ``plain``."""
    temp, _ = compress.compress_to_temp(plain, dest, expected_sha256=sha256)
    try:
        fileio.replace(temp, dest)
        fsync_dir(dest.parent)
    finally:
        with suppress(FileNotFoundError):
            temp.unlink()
    plain.unlink()
