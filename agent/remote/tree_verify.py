"""``verify --remote`` and ``list --remote`` for directory copies (agent.remote.trees): every
file a manifest lists is checked like a file copy (present, size, the sha256 the object carries;
``--deep`` reads it back), and a problem names the file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.remote.verify import RemoteCheck, stream_sha256
from providers.errors import NotFound, ProviderError

if TYPE_CHECKING:
    from agent.local.store import Store
    from agent.remote.connect import Remote


def _ours(store: Store, remote: Remote, models: set[str] | None) -> list[dict[str, Any]]:
    """The remote's directory copies of configured models (``models``: of those only)."""
    wanted = models if models is not None else {m.name for m in store.config.models}
    return [t for _, t in sorted(remote.catalog.trees.items()) if t.get("model") in wanted]


def tree_damage(
    store: Store, remote: Remote, *, deep: bool = False, models: set[str] | None = None
) -> dict[str, list[tuple[str, str, str]]]:
    """Per directory copy on the remote: (file, state, why) for every file found wrong."""
    listing = {info.key: info for info in remote.provider.list("")}
    damage: dict[str, list[tuple[str, str, str]]] = {}
    for tree in _ours(store, remote, models):
        name = tree["name"]
        damage[name] = []
        for rel, item in sorted((tree.get("files") or {}).items()):
            key = f"{name}/{rel}"
            problem = _file_problem(remote, listing.get(key), key, item, deep)
            if problem:
                damage[name].append((rel, *problem))
    return damage


def verify_trees(
    store: Store, remote: Remote, *, deep: bool = False, models: set[str] | None = None
) -> list[RemoteCheck]:
    """One check per directory copy on the remote: ok, or its files found wrong, by name."""
    checks = []
    trees = remote.catalog.trees
    for name, bad in tree_damage(store, remote, deep=deep, models=models).items():
        if bad:
            state = "missing" if all(s == "missing" for _, s, _ in bad) else "corrupted"
            detail = "; ".join(f"{rel}: {why}" for rel, _, why in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            checks.append(RemoteCheck(name, state, detail + more))
        else:
            how = "read back in full" if deep else "sizes and checksums"
            count = len(trees[name].get("files") or {})
            checks.append(RemoteCheck(name, "ok", f"directory, {count} files ({how})"))
    return checks


def repair_trees(store: Store, remote: Remote, report: Any, *, deep: bool = False) -> None:
    """Heal each damaged or missing file of a directory copy on the remote, from the local copy
    of the same content (checked against the manifest before it leaves) or from another object
    on the remote that holds it; the manifest is taken down while its files change and written
    again once they are whole."""
    from agent.remote import catalog as remote_catalog
    from agent.remote.trees import heal_tree_files

    for name, bad in tree_damage(store, remote, deep=deep).items():
        if not bad:
            continue
        tree = remote.catalog.trees[name]
        healed, problems = heal_tree_files(store, remote, tree, [rel for rel, _, _ in bad])
        report.problems.extend(f"{name}/{p}" for p in problems)
        if healed:
            remote_catalog.update(
                remote.provider, lambda c, n=name, t=tree: c.trees.__setitem__(n, t)
            )
            report.done.append(f"{name}: {', '.join(healed)} healed on {remote.name}")


def _file_problem(
    remote: Remote, info: Any, key: str, item: dict[str, Any], deep: bool
) -> tuple[str, str] | None:
    if info is None:
        return "missing", "in the manifest, not on the remote"
    if info.size != item.get("size"):
        return "corrupted", f"size {info.size}, recorded {item.get('size')}"
    try:
        if deep:
            found = stream_sha256(remote, key, info.size)
        else:
            found = info.hashes.get("sha256") or remote.provider.stat(key).hashes.get("sha256")
    except (NotFound, ProviderError) as exc:
        return "missing", str(exc)
    if found is not None and found != item.get("sha256"):
        return "corrupted", "checksum differs from the manifest"
    return None


def tree_rows(
    store: Store, remote: Remote, checks: list[RemoteCheck], models: set[str]
) -> list[dict[str, Any]]:
    """``list --remote`` rows for the directory copies, in the shape of the file rows."""
    by_name = {c.name: c for c in checks}
    rows = []
    for tree in _ours(store, remote, models):
        check = by_name.get(tree["name"])
        rows.append(
            {
                "name": tree["name"] + "/",
                "kind": tree.get("kind"),
                "date": tree.get("date"),
                "size": tree.get("size"),
                "sha256": tree.get("sha256"),
                "state": check.state if check else "unverified",
                "detail": check.detail if check else "",
                "verified_at": None,
                "note": tree.get("note"),
                "created": tree.get("created"),
                "files": len(tree.get("files") or {}),
            }
        )
    return rows
