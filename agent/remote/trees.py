"""Directory copies on a remote (models saved as directories: a save_pretrained folder, a DCP
checkpoint).

On the remote, the files of ``llama-ft_v2026-11-30/`` are objects ``llama-ft_v2026-11-30/<path>``
and the version itself is an entry of the remote catalog's ``trees`` section, its manifest:
every file with its size and sha256. The manifest is written only after every file arrived, so
a directory is complete on a remote exactly when its manifest is there: a push killed halfway
leaves objects no manifest names, which ``pull`` and retention never see (the next push finds
the ones that arrived and sends the rest). A directory whose content changed under the same
name (the backup slot) loses its manifest before the first of its objects is overwritten.

A file whose sha256 the remote already holds (under any name: another version's shard, a plain
file) is copied on the remote instead of sent again. Pull fetches each file into a hidden temp
directory beside the final name, every byte checked against the manifest, and renames the
directory into place (agent.local.tree).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.faultpoints import crash_point
from agent.local.catalog import entry_for_dir
from agent.progress import human_size
from agent.remote import catalog as remote_catalog
from agent.rules import manifest
from agent.rules.naming import parse_name
from providers.base import ObjectInfo
from providers.errors import NotFound, ProviderError

if TYPE_CHECKING:
    from agent.config import ModelConfig
    from agent.local.store import Store
    from agent.remote.connect import Remote
    from agent.remote.push_report import SyncReport

log = logging.getLogger(__name__)


def is_tree_object(key: str, models: Sequence[ModelConfig]) -> bool:
    """Is ``key`` a file of a directory copy (``llama-ft_v2026-11-30/config.json``), one that
    ``Remote.objects`` leaves to this module? Any model's name counts: on a new machine nothing
    on disk says yet that ``file:`` names a directory."""
    top, sep, rest = key.partition("/")
    if not sep or not manifest.is_safe_relative(rest) or top.startswith("."):
        return False
    return any(parse_name(top, m.file, directory=True) is not None for m in models)


def local_trees(store: Store) -> list[tuple[dict[str, Any], Path]]:
    """Every intact directory copy of a directory model (versions oldest first, the backup slot,
    then the current directory), as (remote catalog entry, local path)."""
    out = []
    for m in store.config.models:
        if not m.directory:
            continue
        copies = sorted(
            (e for e in store.catalog.of_model(m.name) if e.kind in ("version", "backup")),
            key=lambda e: (e.kind == "backup", e.sort_key),
        )
        for e in copies:
            if e.is_dir and store.state_of(e).state == "ok":
                out.append((e.to_dict(), store.path(e.name)))
        current = store.path(m.file)
        if current.is_dir():
            files = store.manifest(current)
            entry = entry_for_dir(current, _current_ident(store, m), files, source="current")
            out.append(({**entry.to_dict(), "kind": "current", "name": m.file}, current))
    return out


def _current_ident(store: Store, m: ModelConfig):  # type: ignore[no-untyped-def]
    from agent.rules.naming import Identity

    return Identity(m.name, "current", None, 1, None, base=m.file, directory=True)


def push_trees(store: Store, remote: Remote, report: SyncReport, *, dry_run: bool) -> None:
    """Send every directory copy the remote does not hold yet; its manifest last."""
    trees = local_trees(store)
    if not trees:
        return
    provider = remote.provider
    listing = {info.key: info for info in provider.list("")}
    held = remote_catalog.load(provider)
    known = _known_content(held, listing)
    for entry, root in trees:
        name = entry["name"]
        files = manifest.from_json(entry["files"])
        old = held.trees.get(name)
        if old and old.get("sha256") == entry["sha256"] and _all_there(old, listing):
            continue
        if name in held.expired and entry.get("kind") == "version":
            continue  # this remote's retention removed it: sending it again would be undone
        problem = _refusal(store, root, files)
        if problem:
            report.problems.append(f"{name}: not pushed: {problem}")
            continue
        if dry_run:
            report.did(f"would send directory {name} ({len(files)} files)")
            continue
        if old:  # its objects are about to change: it is no longer complete from now on
            remote_catalog.update(provider, lambda c, n=name: c.trees.pop(n, None) and None)
        for rel, (size, sha) in sorted(files.items()):
            key = f"{name}/{rel}"
            if _holds(provider, listing.get(key), size, sha):
                known.setdefault(sha, key)
                continue
            _send(store, remote, report, key, root / rel, size, sha, known.get(sha))
            known[sha] = key
            crash_point("tree-push-file")  # test-only: some files of a directory on the remote
        stamped = {**entry, "pushed_at": remote_catalog.now_iso()}
        remote_catalog.update(provider, lambda c, n=name, e=stamped: c.trees.__setitem__(n, e))
        report.did(
            f"pushed directory {name} to {remote.name} ({len(files)} files, "
            f"{human_size(manifest.total_size(files))}); manifest written last"
        )
        for key in [k for k in listing if k.startswith(name + "/")]:
            if key[len(name) + 1 :] not in files:
                provider.delete(key)  # a file the new content of this name no longer has


def _refusal(store: Store, root: Path, files: manifest.Manifest) -> str | None:
    from agent.checks.directory import check_tree

    verdict = check_tree(store, root, files)
    return None if verdict.ok else f"fails the check: {verdict.reason}"


def _known_content(held: Any, listing: dict[str, ObjectInfo]) -> dict[str, str]:
    """sha256 -> a key on the remote whose object holds it (by the catalogs, size checked)."""
    known: dict[str, str] = {}
    for name, tree in held.trees.items():
        for rel, item in (tree.get("files") or {}).items():
            info = listing.get(f"{name}/{rel}")
            if info is not None and info.size == item.get("size"):
                known.setdefault(str(item.get("sha256")), info.key)
    for name, entry in held.files.items():
        info = listing.get(name)
        if info is not None and info.size == entry.get("size") and entry.get("sha256"):
            known.setdefault(str(entry["sha256"]), name)
    return known


def _all_there(tree: dict[str, Any], listing: dict[str, ObjectInfo]) -> bool:
    name = tree["name"]
    return all(
        (info := listing.get(f"{name}/{rel}")) is not None and info.size == item.get("size")
        for rel, item in (tree.get("files") or {}).items()
    )


def _holds(provider: Any, info: ObjectInfo | None, size: int, sha: str) -> bool:
    """Does the object already hold this content (one a killed push sent, say)? Listings leave
    out the sha256 an object carries, so the object is asked."""
    if info is None or info.size != size:
        return False
    if info.hashes.get("sha256") is None:
        try:
            info = provider.stat(info.key)
        except (NotFound, ProviderError):
            return False
    return info.hashes.get("sha256") == sha


def _send(
    store: Store,
    remote: Remote,
    report: SyncReport,
    key: str,
    path: Path,
    size: int,
    sha: str,
    source: str | None,
) -> None:
    provider = remote.provider
    copy = provider.capabilities.copy
    if source is not None and copy is not None:
        try:
            info = copy(source, key)
        except (NotFound, ProviderError) as exc:
            log.info("remote %s: copy of %s failed (%s); sending it", remote.name, source, exc)
        else:
            if info.size == size and info.hashes.get("sha256", sha) == sha:
                report.files += 1
                report.bytes_copied += size
                report.transfers.append(_moved(key, "copy", 0, size, source))
                report.did(f"copied {source} -> {key} on {remote.name}")
                return
            provider.delete(key)
    sent = 0

    def moved(n: int) -> None:
        nonlocal sent
        sent += n

    provider.put(key, path, expected_hashes={"sha256": sha}, progress=moved)
    report.files += 1
    report.bytes_sent += sent
    report.bytes_resumed += max(0, size - sent)
    report.transfers.append(_moved(key, "upload", sent, 0, None))
    report.did(f"uploaded {key} to {remote.name}")


def _moved(key: str, action: str, sent: int, copied: int, source: str | None) -> dict[str, Any]:
    return {
        "name": key,
        "action": action,
        "bytes_sent": sent,
        "bytes_copied": copied,
        "source": source,
    }


# -- pull -------------------------------------------------------------------------------------
def heal_tree_files(
    store: Store, remote: Remote, tree: dict[str, Any], rels: list[str]
) -> tuple[list[str], list[str]]:
    """Put back the files ``rels`` of directory copy ``tree`` on the remote: (healed, problems).
    The manifest is removed first (the directory is not whole meanwhile); the caller writes it
    back when every file healed."""
    from agent.remote.push_report import SyncReport

    name = tree["name"]
    files = manifest.from_json(tree["files"])
    local = _local_holding(store, name, tree["sha256"])
    provider = remote.provider
    listing = {info.key: info for info in provider.list("")}
    known = {k: v for k, v in _known_content(remote_catalog.load(provider), listing).items()}
    plan, problems = [], []
    for rel in rels:
        size, sha = files[rel]
        source = known.get(sha)
        if source == f"{name}/{rel}":
            source = None  # the damaged object itself
        if local is None and source is None:
            problems.append(f"{rel}: no intact copy here or on {remote.name}")
        plan.append((rel, size, sha, source))
    if problems:
        return [], problems  # left as it is (and reported) rather than half healed
    remote_catalog.update(provider, lambda c: c.trees.pop(name, None) and None)
    scratch = SyncReport(remote.name)
    for rel, size, sha, source in plan:
        path = local / rel if local is not None else store.path(name) / rel
        _send(store, remote, scratch, f"{name}/{rel}", path, size, sha, source)
    return [rel for rel, *_ in plan], []


def _local_holding(store: Store, name: str, identity: str) -> Path | None:
    """A local directory that holds exactly the content ``identity``: the copy of that name, or
    any other directory copy or current directory with the same manifest."""
    candidates = [name, *(e.name for e in store.catalog if e.is_dir)]
    candidates += [m.file for m in store.config.models if m.directory]
    for cand in dict.fromkeys(candidates):
        path = store.path(cand)
        if path.is_dir() and manifest.identity(store.manifest(path, fresh=True)) == identity:
            return path
    return None


def tree_fetcher(remote: Remote) -> Any:
    """For agent.local.tree_heal: fetch a content from any object on ``remote`` that holds it,
    checked against its sha256 on the way in."""
    provider = remote.provider
    listing = {info.key: info for info in provider.list("")}
    known = _known_content(remote_catalog.load(provider), listing)

    def fetch(sha: str, size: int, dest: Path) -> str | None:
        key = known.get(sha)
        if key is None:
            return None
        try:
            provider.get(key, dest, expected_hashes={"sha256": sha})
        except ProviderError:
            return None
        return f"from {key} on {remote.name}"

    return fetch


def trees_to_push(store: Store, remote: Remote) -> list[tuple[str, int]]:
    """The directory copies a push would send, as (``name/``, total size): those whose content
    the remote holds no manifest of (what is already there of them is copied or skipped)."""
    out = []
    for entry, _ in local_trees(store):
        old = remote.catalog.trees.get(entry["name"])
        if old and old.get("sha256") == entry["sha256"]:
            continue
        if entry["name"] in remote.catalog.expired and entry.get("kind") == "version":
            continue
        out.append((entry["name"] + "/", int(entry["size"])))
    return out
