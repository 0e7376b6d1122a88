"""What "nothing lost" means, computed: sha256 snapshots of each side (models dir, remote), the
bytes of every version that existed before and is intact on no side after, and the temp files and
journals a finished command must not leave behind."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from agent.local.hashing import OUR_TEMP_RE
from providers import Provider, open_provider

STATE_DIR = ".model-safety"
CHUNK = 4 * 1024 * 1024

# Temp names of every writer we have: agent.local.hashing.temp_path
# (``.<name>.<12 hex>.incomplete``), providers.transfer's partial downloads
# (``.<name>.<tag>.incomplete``), Drive's uploads under a temporary title, and generic ``*.tmp``.
TEMP_RE = re.compile(r".*(\.incomplete|\.tmp|\.partial)$")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def snapshot_dir(path: Path) -> dict[str, str]:
    """name -> sha256 of every regular file directly in ``path`` (versions live side by side),
    skipping the state dir and our temp files."""
    out: dict[str, str] = {}
    for entry in sorted(Path(path).iterdir()):
        if entry.name == STATE_DIR or TEMP_RE.fullmatch(entry.name) or not entry.is_file():
            continue
        out[entry.name] = sha256_file(entry)
    return out


def sizes_dir(path: Path) -> dict[str, int]:
    """name -> size, for the same files as snapshot_dir."""
    return {
        e.name: e.stat().st_size
        for e in Path(path).iterdir()
        if e.is_file() and e.name != STATE_DIR and not TEMP_RE.fullmatch(e.name)
    }


def _remote_sha256(provider: Provider, key: str) -> str:
    """The sha256 of the bytes the remote really holds (not the hash it vouches for)."""
    h = hashlib.sha256()
    if provider.capabilities.iter_bytes is not None:
        for chunk in provider.capabilities.iter_bytes(key):
            h.update(chunk)
        return h.hexdigest()
    with tempfile.TemporaryDirectory() as tmp:  # pragma: no cover - every backend streams
        dest = Path(tmp) / "object"
        provider.get(key, dest)
        return sha256_file(dest)


def snapshot_remote(provider: Provider, prefix: str = "") -> dict[str, str]:
    """name -> sha256 of every object under ``prefix`` (re-hashed from its bytes), skipping the
    remote's state (catalog)."""
    out: dict[str, str] = {}
    for info in provider.list(prefix):
        if info.key.startswith(STATE_DIR + "/"):
            continue
        out[info.key[len(prefix) :]] = _remote_sha256(provider, info.key)
    return out


def sizes_remote(provider: Provider, prefix: str = "") -> dict[str, int]:
    return {
        i.key[len(prefix) :]: i.size
        for i in provider.list(prefix)
        if not i.key.startswith(STATE_DIR + "/")
    }


def lost_bytes(
    before: Mapping[str, Mapping[str, str]],
    after: Mapping[str, Mapping[str, str]],
    sizes: Mapping[str, int],
    *,
    by: Literal["name", "content"] = "name",
) -> int:
    """Bytes of every (name, sha256) that existed on some side before and is intact on no side
    after. ``before``/``after`` map a side ("local", "remote", ...) to a snapshot; ``sizes``
    maps a name to its size (a name missing from ``sizes`` is an error: unmeasured is not 0).

    ``by="content"``: only the sha256 must survive, under any name (a restore keeps the file it
    replaces under a new name); ``sizes`` then maps sha256 -> size."""
    if by == "content":
        had = {sha for side in before.values() for sha in side.values()}
        kept = {sha for side in after.values() for sha in side.values()}
        return sum(sizes[sha] for sha in had - kept)
    existed = {(name, sha) for side in before.values() for name, sha in side.items()}
    intact = {(name, sha) for side in after.values() for name, sha in side.items()}
    return sum(sizes[name] for name, _ in existed - intact)


def stray_temps(path: Path) -> list[str]:
    """Temp files anywhere under ``path`` (state dir included), relative paths, sorted."""
    found = []
    for dirpath, _dirs, files in os.walk(path):
        for fn in files:
            if TEMP_RE.fullmatch(fn) or OUR_TEMP_RE.fullmatch(fn):
                found.append(os.path.relpath(os.path.join(dirpath, fn), path))
    return sorted(found)


def leftover_journals(models_dir: Path) -> list[str]:
    """Resume journals under the state dir (``remotes/<name>/{uploads,downloads,...}``): after a
    transfer completed, none may remain."""
    remotes = Path(models_dir) / STATE_DIR / "remotes"
    if not remotes.is_dir():
        return []
    return sorted(
        str(p.relative_to(remotes))
        for p in remotes.rglob("*")
        if p.is_file() and p.parent.name in ("uploads", "downloads", "gdrive-uploads")
    )


def snapshot_remote_at(settings: Mapping, state_dir: Path) -> dict[str, str]:
    """``snapshot_remote`` of the remote ``settings`` describe, through a provider opened (and
    closed) for the purpose, bypassing whatever proxy the command under test went through."""
    provider = open_provider("check", dict(settings), state_dir=state_dir)
    try:
        return snapshot_remote(provider)
    finally:
        provider.close()
