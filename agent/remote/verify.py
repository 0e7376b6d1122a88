"""Check a remote's copies against its catalog, and heal each side from a good copy on the other.

``verify`` compares size and the strongest checksum the provider holds (sha256 in metadata, Drive's
md5) with what was recorded at push time, without a download; ``deep`` streams every object and
re-hashes it, writing nothing. ``repair`` pulls a corrupted or missing local version back from the
remote, and re-uploads a corrupted or missing remote copy from a good local one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import progress
from agent.checks.verdicts import refusal
from agent.remote.catalog import CATALOG_KEY, RemoteCatalog, now_iso
from agent.remote.connect import Remote, unsafe_name
from agent.remote.push import _remote_entry
from agent.rules.naming import identify
from agent.rules.push_plan import compare_hashes
from providers.errors import IntegrityError, PermissionDenied, ProviderError, QuotaExceeded

if TYPE_CHECKING:
    from agent.local.store import Store


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteCheck:
    name: str
    state: str  # ok | corrupted | missing | unrecorded | unverified | damaged (the catalog)
    detail: str = ""
    verified_at: str | None = None


@dataclass
class RemoteVerifyReport:
    remote: str
    checks: list[RemoteCheck] = field(default_factory=list)
    deep: bool = False
    seconds: float = 0.0

    @property
    def problems(self) -> list[RemoteCheck]:
        return [c for c in self.checks if c.state in ("corrupted", "missing", "damaged")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "deep": self.deep,
            "seconds": round(self.seconds, 3),
            "checks": [asdict(c) for c in self.checks],
            "problems": len(self.problems),
        }


def _stream_sha256(remote: Remote, name: str, size: int) -> str:
    provider = remote.provider
    iter_bytes = provider.capabilities.iter_bytes
    if iter_bytes is None:
        raise ProviderError(f"remote {remote.name} cannot stream objects; --deep is not available")
    digest = hashlib.sha256()
    with progress.bar(f"reading {name} on {remote.name}", size) as advance:
        for chunk in iter_bytes(name, progress=advance):
            digest.update(chunk)
    return digest.hexdigest()


def verify_remote(
    store: Store, remote: Remote, *, deep: bool = False, record: bool = True
) -> RemoteVerifyReport:
    """Check every remote copy; ``record`` stamps ``verified_at`` in the remote catalog for the
    copies found intact."""
    started = time.monotonic()
    report = RemoteVerifyReport(remote.name, deep=deep)
    if remote.catalog.damaged:
        report.checks.append(
            RemoteCheck(
                CATALOG_KEY,
                "damaged",
                f"unreadable ({remote.catalog.damaged}); `repair` or the next push rewrites it",
            )
        )
    recorded = remote.catalog.files
    objects = remote.objects
    verified: list[str] = []
    models_dir = store.models_dir.resolve()
    # the catalog may list other agents' models (one remote, several machines): not ours to judge
    names = set(objects) | {
        n
        for n in recorded
        if unsafe_name(n, models_dir) is None and identify(n, store.config.models) is not None
    }
    for name in sorted(names):
        rec = recorded.get(name)
        obj = objects.get(name)
        if obj is None:
            report.checks.append(
                RemoteCheck(name, "missing", "in the remote catalog, not on the remote")
            )
            continue
        expected = dict(rec or {})
        local = store.catalog.get(name)
        if not expected.get("sha256") and local is not None and local.size == obj.info.size:
            expected = {"sha256": local.sha256, "size": local.size}
        if not expected:
            report.checks.append(RemoteCheck(name, "unrecorded", "not in the remote catalog yet"))
            continue
        if expected.get("size") is not None and expected["size"] != obj.info.size:
            report.checks.append(
                RemoteCheck(name, "corrupted", f"size {obj.info.size}, recorded {expected['size']}")
            )
            continue
        hashes = dict(obj.info.hashes)
        if not set(hashes) & remote.provider.capabilities.hashes:
            hashes = dict(remote.provider.stat(name).hashes)  # listings may omit checksums
        same = compare_hashes(hashes, expected)
        if same is None:
            state = "unverified"
            deep_cmd = f"model-safety verify --remote {remote.name} --deep"
            detail = f"no checksum in common; `{deep_cmd}` reads it back"
        elif same:
            state, detail = "ok", "size and checksums match"
        else:
            state, detail = "corrupted", "checksum differs from the one recorded at push"
        if deep and state != "corrupted" and expected.get("sha256"):
            try:
                actual = _stream_sha256(remote, name, obj.info.size)
            except ProviderError as exc:
                state, detail = "corrupted", f"cannot be read back: {exc}"
            else:
                if actual == expected["sha256"]:
                    state, detail = "ok", "bytes read back and re-hashed: sha256 matches"
                else:
                    state, detail = "corrupted", "bytes read back hash to a different sha256"
        if state == "ok":
            verified.append(name)
        report.checks.append(RemoteCheck(name, state, detail, (rec or {}).get("verified_at")))
    verified = [n for n in verified if n in recorded]
    if verified and record:
        from agent.remote import catalog as remote_catalog

        when = now_iso()

        def edit(catalog: RemoteCatalog) -> None:
            for n in verified:
                catalog.mark_verified(n, when)

        try:
            remote_catalog.update(remote.provider, edit)
        except (PermissionDenied, QuotaExceeded) as exc:
            # a read-only key (an auditor's, say) may still check the copies; only the
            # verified_at stamps are lost
            log.warning("remote %s: could not record the verification: %s", remote.name, exc)
        remote.refresh()
    report.seconds = time.monotonic() - started
    return report


def _without_md5(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "md5"}


def _local_sha(store: Store, name: str) -> str | None:
    path = store.path(name)
    try:
        return store.sha256(path, fresh=True) if path.is_file() else None
    except OSError:
        return None


def quarantine(store: Store, name: str) -> Path:
    """Move a damaged local file out of the way (never delete bytes): into
    ``.model-safety/quarantine/``, on the same filesystem, so it is a rename."""
    qdir = store.state_dir / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    dest = qdir / f"{name}.{stamp}"
    os.replace(store.path(name), dest)
    store.cache.forget(name)
    return dest


@dataclass
class RepairReport:
    remote: str
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repair(store: Store, remote: Remote, *, deep: bool = False) -> RepairReport:
    """Heal both sides; ``deep`` reads every remote object back to find damage that size and
    stored checksums cannot show (e.g. an object rewritten with its old metadata)."""
    report = RepairReport(remote.name)
    check = verify_remote(store, remote, deep=deep)
    remote_state = {c.name: c.state for c in check.checks}
    # local side: every catalogued copy, re-hashed
    for state in store.verify():
        for part_name in [*state.entry.companions.values(), state.entry.name]:
            entry = store.catalog.get(part_name)
            if entry is None:
                continue
            if store.state_of(entry).state == "ok":
                continue
            obj = remote.objects.get(part_name)
            good_there = obj is not None and remote_state.get(part_name) in ("ok", "unverified")
            rec_sha = (obj.recorded or {}).get("sha256") if obj else None
            if rec_sha and rec_sha != entry.sha256 and _local_sha(store, part_name) == rec_sha:
                # The file holds exactly what was pushed: its local catalog entry is damaged.
                store.catalog.add(dataclasses.replace(entry, sha256=rec_sha))
                report.done.append(f"{part_name}: its local catalog entry was damaged; corrected")
                continue
            if not good_there or (rec_sha and rec_sha != entry.sha256):
                report.problems.append(
                    f"{part_name}: damaged here and no good copy on {remote.name}"
                )
                continue
            path = store.path(part_name)
            if path.exists():
                aside = quarantine(store, part_name)
                report.done.append(f"{part_name}: damaged local copy moved to {aside}")
            try:
                remote.provider.get(part_name, path, expected_hashes={"sha256": entry.sha256})
            except (IntegrityError, ProviderError) as exc:
                report.problems.append(f"{part_name}: could not pull a good copy: {exc}")
                continue
            store.cache.remember(path, entry.sha256)
            report.done.append(f"{part_name}: healed from {remote.name}")
    store.save()
    # remote side: re-upload what is damaged or missing there from a good local copy
    from agent.remote.push import local_files

    # name -> the catalog record of a good local copy (dated copies and the current files)
    good_here = {lf.name: entry for lf, entry in local_files(store) if lf.ok}
    healed: dict[str, dict[str, Any]] = {}
    if remote.catalog.damaged:
        # Rewrite it for every remote copy that checked intact against a good local copy.
        for c in check.checks:
            obj = remote.objects.get(c.name)
            here = good_here.get(c.name)
            if obj is None or here is None or c.state not in ("ok", "unrecorded"):
                continue
            # an unrecorded copy (a current file) counts only if the backend vouches for it
            hashes = dict(remote.provider.stat(c.name).hashes)
            if c.state == "ok" or compare_hashes(hashes, here):
                healed[c.name] = _remote_entry(_without_md5(here), hashes)
        report.done.append(f"{CATALOG_KEY}: damaged on {remote.name}, rewritten from the files")
    for c in check.problems:
        if c.name == CATALOG_KEY:
            continue
        here = good_here.get(c.name)
        rec = remote.catalog.files.get(c.name) or {}
        if here is None:
            report.problems.append(f"{c.name}: {c.state} on {remote.name} and no good local copy")
            continue
        obj = remote.objects.get(c.name)
        if rec.get("sha256") and rec["sha256"] != here["sha256"]:
            if obj is not None and _stream_sha256(remote, c.name, obj.info.size) == here["sha256"]:
                # The object holds the local bytes: its remote catalog entry is what is damaged.
                healed[c.name] = _remote_entry(_without_md5(here), obj.info.hashes)
                report.done.append(f"{c.name}: its remote catalog entry was damaged; rewritten")
                continue
            report.problems.append(
                f"{c.name}: the remote catalog records other content than the local copy; "
                "left alone (inspect by hand)"
            )
            continue
        refused = refusal(store, c.name, here["sha256"])
        if refused:
            report.problems.append(f"{c.name}: not re-uploaded to {remote.name}: {refused}")
            continue
        info = remote.provider.put(
            c.name, store.path(c.name), expected_hashes={"sha256": here["sha256"]}
        )
        healed[c.name] = _remote_entry(_without_md5(here), info.hashes)
        report.done.append(f"{c.name}: re-uploaded to {remote.name} ({c.state} there)")
    if healed:
        from agent.remote.push import _record

        _record(remote, healed)
    return report
