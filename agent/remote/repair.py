"""Heal both sides of a remote from any intact copy of the same content.

``repair`` checks the remote (``verify_remote``; with ``deep`` every object is read back, and
without it what an earlier deep verify found still counts), then:

- local side: every catalogued copy is re-hashed; a damaged or missing one comes back from another
  local file with the same content, else from this remote, else from the other remotes;
- remote side: a missing, corrupted or replaced object gets its content back from the same remote
  under another name (server-side copy), else from this machine, else from another remote
  (agent.remote.heal). A replaced object whose bytes still hash to what was pushed is only
  recorded as it is now.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from agent.remote.catalog import CATALOG_KEY
from agent.remote.compressed import stored_view
from agent.remote.connect import Remote, sweep_download_journals
from agent.remote.heal import RemotePool, clean_heal_dir, heal_local, heal_remote
from agent.remote.outgoing import local_files
from agent.remote.push import _record, remote_entry
from agent.remote.verify import RemoteCheck, stream_sha256, verify_remote
from agent.rules.push_plan import compare_hashes
from providers.errors import ProviderError

if TYPE_CHECKING:
    from agent.local.catalog import Entry
    from agent.local.store import Store

# stamps of the object that was there, not of the one a heal puts back
_FRESH = ("md5", "object", "verified_at", "pushed_at", "pushed_by")


@dataclass
class RepairReport:
    remote: str
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repair_local(store: Store, pool: RemotePool | None = None) -> RepairReport:
    """Heal the local copies only (no remote configured, or none asked for): from other local
    files with the same content, else from the remotes in ``pool``."""
    report = RepairReport("local")
    sweep_download_journals(store)
    _repair_local(store, None, pool, report)
    return report


def repair(
    store: Store, remote: Remote, *, deep: bool = False, pool: RemotePool | None = None
) -> RepairReport:
    """Heal both sides of ``remote``; ``pool`` holds the other configured remotes, tried as
    sources when neither this machine nor ``remote`` has an intact copy."""
    report = RepairReport(remote.name)
    # a new disk mounted where the models were: heal into it (as pull does)
    store.models_dir.mkdir(parents=True, exist_ok=True)
    sweep_download_journals(store)
    check = verify_remote(store, remote, deep=deep)
    remote.refresh()  # what the check found (deep findings) now marks the objects as sources
    _repair_local(store, remote, pool, report)
    healed = _repair_remote(store, remote, check.checks, pool, deep, report)
    if healed:
        _record(remote, healed)
    remote.findings.save()
    clean_heal_dir(store)
    from agent.remote.tree_verify import repair_trees

    repair_trees(store, remote, report, deep=deep)  # directory copies (agent.remote.trees)
    return report


def _repair_local(
    store: Store,
    remote: Remote | None,
    pool: RemotePool | None,
    report: RepairReport,
) -> None:
    for state in store.verify():
        for part_name in [*state.entry.companions.values(), state.entry.name]:
            entry = store.catalog.get(part_name)
            if entry is None or store.state_of(entry).state == "ok":
                continue
            if entry.is_dir:
                _repair_tree_here(store, entry, remote, report)
                continue
            obj = remote.objects.get(part_name) if remote is not None else None
            rec_sha = (obj.recorded or {}).get("sha256") if obj else None
            if rec_sha and rec_sha != entry.sha256 and _local_sha(store, part_name) == rec_sha:
                # The file holds exactly what was pushed: its local catalog entry is damaged.
                store.catalog.add(dataclasses.replace(entry, sha256=rec_sha))
                report.done.append(f"{part_name}: its local catalog entry was damaged; corrected")
                continue
            out = heal_local(store, part_name, entry.sha256, entry.size, remote, pool)
            for bad in out.bad_sources:
                report.problems.append(f"{part_name}: source passed over: {bad}")
            if out.how:
                report.done.append(f"{part_name}: healed here ({out.how})")
            else:
                where = f", on {remote.name}{_or_others(pool, remote)}" if remote else ""
                report.problems.append(
                    f"{part_name}: damaged here and no intact copy of its content on this "
                    f"machine{where}"
                )
    store.save()


def _repair_remote(
    store: Store,
    remote: Remote,
    checks: list[RemoteCheck],
    pool: RemotePool | None,
    deep: bool,
    report: RepairReport,
) -> dict[str, dict[str, Any]]:
    # name -> the catalog record of a good local copy (dated copies and the current files)
    good_here = {lf.name: entry for lf, entry in local_files(store) if lf.ok}
    healed: dict[str, dict[str, Any]] = {}
    healed_here: dict[str, str] = {}  # sha256 -> the name this run put it back under
    if remote.catalog.damaged:
        # Rewrite it for every remote copy that checked intact against a good local copy.
        for c in checks:
            obj = remote.objects.get(c.name)
            here = good_here.get(c.name)
            if obj is None or here is None or c.state not in ("ok", "unrecorded"):
                continue
            # an unrecorded copy (a current file) counts only if the backend vouches for it
            info = remote.provider.stat(c.name)
            if c.state == "ok" or compare_hashes(dict(info.hashes), here):
                healed[c.name] = remote_entry(here, info)
        report.done.append(f"{CATALOG_KEY}: damaged on {remote.name}, rewritten from the files")
    for c in checks:
        if c.name == CATALOG_KEY or c.state not in ("corrupted", "missing", "changed"):
            continue
        here = good_here.get(c.name)
        rec = stored_view(remote.catalog.files.get(c.name)) or {}
        obj = remote.objects.get(c.name)
        if here and rec.get("sha256") and rec["sha256"] != here["sha256"]:
            if obj is not None and _remote_sha(remote, c.name) == here["sha256"]:
                # The object holds the local bytes: its remote catalog entry is what is damaged.
                healed[c.name] = remote_entry(here, remote.provider.stat(c.name))
                report.done.append(f"{c.name}: its remote catalog entry was damaged; rewritten")
                continue
            report.problems.append(
                f"{c.name}: the remote catalog records other content than the local copy; "
                "left alone (inspect by hand)"
            )
            continue
        want = rec if rec.get("sha256") else (here or {})
        sha, size = want.get("sha256"), want.get("size")
        if not sha or size is None:
            report.problems.append(f"{c.name}: {c.state} on {remote.name}, and nothing says what "
                                   "it should hold")  # fmt: skip
            continue
        if c.state == "changed" and not deep and _remote_sha(remote, c.name) == sha:
            healed[c.name] = remote_entry(want, remote.provider.stat(c.name))
            report.done.append(
                f"{c.name}: changed on {remote.name} since push, but its bytes read back "
                "intact; recorded it as it is now"
            )
            continue
        out = heal_remote(store, remote, c.name, sha, int(size), pool, healed=healed_here)
        for bad in out.bad_sources:
            report.problems.append(f"{c.name}: source passed over: {bad}")
        if out.info is None:
            report.problems.append(
                f"{c.name}: {c.state} on {remote.name}, and no intact copy of its content "
                f"on this machine, on {remote.name}{_or_others(pool, remote)}"
            )
            continue
        entry = {k: v for k, v in want.items() if k not in _FRESH}
        healed[c.name] = remote_entry(entry, out.info)
        healed_here.setdefault(sha, c.name)
        remote.findings.clear(remote.name, c.name)
        report.done.append(f"{c.name}: healed on {remote.name} ({c.state} there): {out.how}")
    return healed


def _repair_tree_here(
    store: Store, entry: Entry, remote: Remote | None, report: RepairReport
) -> None:
    from agent.local.tree_heal import heal_tree
    from agent.remote.trees import tree_fetcher

    healed, failed = heal_tree(store, entry, tree_fetcher(remote) if remote else None)
    report.done.extend(healed)
    where = f" or on {remote.name}" if remote else ""
    report.problems.extend(
        f"{entry.name}/{rel}: damaged here and no intact copy of its content on this machine{where}"
        for rel in failed
    )


def _or_others(pool: RemotePool | None, remote: Remote) -> str:
    others = [n for n in (pool.configs if pool else {}) if n != remote.name]
    return f" or on {', '.join(others)}" if others else ""


def _local_sha(store: Store, name: str) -> str | None:
    path = store.path(name)
    try:
        return store.sha256(path, fresh=True) if path.is_file() else None
    except OSError:
        return None


def _remote_sha(remote: Remote, name: str) -> str | None:
    """The sha256 of the object's bytes, read back; None when it cannot be read."""
    obj = remote.objects.get(name)
    if obj is None:
        return None
    try:
        return stream_sha256(remote, name, obj.info.size)
    except ProviderError:
        return None
