"""Pulling directory copies from a remote (agent.remote.trees has the layout): each file of a
version whose manifest is on the remote is fetched into a hidden temp directory beside the final
name, every byte checked against the manifest, and the directory renamed into place
(agent.local.tree). A version without a manifest (a push still under way, or killed) is never
chosen."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.faultpoints import crash_point
from agent.local.catalog import Entry, entry_for_dir
from agent.local.tree import discard, fsync_dirs, put_in_place
from agent.rules import manifest
from agent.rules.naming import backup_name, identify, is_plain_name, replaced_name

if TYPE_CHECKING:
    from agent.config import ModelConfig
    from agent.local.store import Store
    from agent.remote.connect import Remote

log = logging.getLogger(__name__)


def remote_trees(remote: Remote, m: ModelConfig) -> list[dict[str, Any]]:
    """The complete directory copies of ``m`` on the remote (those with a manifest), newest
    first."""
    mine = [
        e
        for e in remote.catalog.trees.values()
        if e.get("model") == m.name and isinstance(e.get("files"), dict)
    ]
    return sorted(mine, key=lambda e: Entry.from_dict(e).sort_key, reverse=True)


def choose(remote: Remote, m: ModelConfig, version: str) -> list[dict[str, Any]]:
    """The manifests ``version`` names: latest, backup, all, a date, or a copy's name."""
    trees = remote_trees(remote, m)
    copies = [e for e in trees if e.get("kind") in ("version", "backup")]
    if version == "latest":
        newest = sorted(copies, key=lambda e: str(e.get("created")), reverse=True)[:1]
        current = [e for e in trees if e.get("kind") == "current"]
        return current[:1] or newest
    if version == "backup":
        return [e for e in trees if e["name"] == backup_name(m.file, directory=True)]
    if version == "all":
        return copies + [e for e in trees if e.get("kind") == "current"]
    try:
        day = dt.date.fromisoformat(version)
    except ValueError:
        return [e for e in trees if e["name"] == version]
    return [e for e in copies if e.get("kind") == "version" and e.get("date") == day.isoformat()]


def pull_trees(
    store: Store, remote: Remote, m: ModelConfig, version: str, done: list[str]
) -> tuple[int, int]:
    """Fetch the directory copies ``version`` names: (files, bytes) received; (-1, 0) when the
    remote holds none."""
    chosen = choose(remote, m, version)
    if not chosen:
        return -1, 0
    received, count = 0, 0
    for entry in chosen:
        name = entry["name"]
        files = manifest.from_json(entry["files"])
        ident = identify(name, store.config.models) if is_plain_name(name) else None
        if ident is None or ident.model != m.name or not ident.directory:
            continue  # a catalog entry under a name that is not this model's
        dest = store.path(name)
        if dest.is_dir() and manifest.identity(store.manifest(dest)) == entry["sha256"]:
            continue
        store.check_space(manifest.total_size(files))
        temp = _fetch_tree(remote, name, files, dest)
        try:
            if dest.exists():  # different local bytes: kept aside, never overwritten
                aside = store.path(replaced_name(m.file, dt.datetime.now(), directory=True))
                dest.rename(aside)
                done.append(f"kept the local {name} aside as {aside.name}")
            put_in_place(temp, dest)
        finally:
            discard(temp)
        received += manifest.total_size(files)
        count += len(files)
        for rel, (_, sha) in files.items():
            store.cache.remember(dest / rel, sha)
        if ident.kind != "current":
            source = f"pull:{remote.name}"
            store.catalog.add(entry_for_dir(dest, ident, files, source=source))
        done.append(f"pulled directory {name} from {remote.name} ({len(files)} files)")
    store.save()
    return count, received


def _fetch_tree(remote: Remote, name: str, files: manifest.Manifest, dest: Path) -> Path:
    from agent.local.hashing import temp_path

    temp = temp_path(dest)
    temp.mkdir()
    try:
        for rel, (_, sha) in sorted(files.items()):
            out = temp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            remote.provider.get(f"{name}/{rel}", out, expected_hashes={"sha256": sha})
            crash_point("tree-pull-file")  # test-only: part of a directory fetched
        fsync_dirs(temp, files)
    except BaseException:
        discard(temp)
        raise
    return temp


def pull_tree_model(
    store: Store, remote: Remote, m: ModelConfig, version: str, report: Any
) -> bool:
    """``pull`` for a directory model: False when the remote holds no complete copy of what
    ``version`` names; the current directory restored from what arrived when there is none."""
    from agent.local.restore import restore_model

    if not m.directory:
        # a new machine: nothing on disk says `file:` names a directory, the remote does
        m = dataclasses.replace(m, directory=True)
        models = tuple(m if x.name == m.name else x for x in store.config.models)
        store.config = dataclasses.replace(store.config, models=models)
    store.remove_stale_temps()  # a directory a killed pull was fetching
    count, received = pull_trees(store, remote, m, version, report.done)
    if count < 0:
        return False
    report.bytes_received += received
    report.files += count
    if not store.path(m.file).exists():
        pulled = [e for e in store.catalog.of_model(m.name) if e.kind in ("version", "backup")]
        if pulled:
            report.done.append(restore_model(store, m.name, pulled[0].name).message)
    return True
