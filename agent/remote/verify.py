"""Check a remote's copies against what push recorded, and say what heals them.

``verify`` compares size, the strongest checksum the provider holds (sha256 in metadata, Drive's
md5) and the object's identity (replaced since push?) with what was recorded at push time,
without a download; ``deep`` streams every object and re-hashes it, and remembers what it found
(agent.remote.findings). Healing is agent.remote.repair.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from agent import progress
from agent.remote.catalog import CATALOG_KEY, RemoteCatalog, now_iso
from agent.remote.compressed import ModelCheck, stored_view
from agent.remote.connect import Remote, unsafe_name
from agent.remote.heal import heal_hint
from agent.rules.naming import identify
from agent.rules.push_plan import compare_hashes
from providers.errors import PermissionDenied, ProviderError, QuotaExceeded

if TYPE_CHECKING:
    from agent.local.store import Store


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteCheck:
    name: str
    # ok | corrupted | missing | changed (replaced since push) | unrecorded | unverified |
    # damaged (the catalog)
    state: str
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
        return [c for c in self.checks if c.state in ("corrupted", "missing", "damaged", "changed")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "deep": self.deep,
            "seconds": round(self.seconds, 3),
            "checks": [asdict(c) for c in self.checks],
            "problems": len(self.problems),
        }


def stream_sha256(
    remote: Remote, name: str, size: int, also: Callable[[bytes], None] | None = None
) -> str:
    provider = remote.provider
    iter_bytes = provider.capabilities.iter_bytes
    if iter_bytes is None:
        raise ProviderError(f"remote {remote.name} cannot stream objects; --deep is not available")
    digest = hashlib.sha256()
    with progress.bar(f"reading {name} on {remote.name}", size) as advance:
        for chunk in iter_bytes(name, progress=advance):
            digest.update(chunk)
            if also is not None:
                also(chunk)
    return digest.hexdigest()


def verify_remote(
    store: Store, remote: Remote, *, deep: bool = False, record: bool = True
) -> RemoteVerifyReport:
    """Check every remote copy; ``record`` stamps ``verified_at`` in the remote catalog for the
    copies found intact. What a deep read finds is remembered in the state dir (findings), so a
    later check without ``--deep`` still knows it."""
    started = time.monotonic()
    report = RemoteVerifyReport(remote.name, deep=deep)
    if remote.catalog.damaged:
        report.checks.append(
            RemoteCheck(
                CATALOG_KEY,
                "damaged",
                f"unreadable ({remote.catalog.damaged}); "
                f"`model-safety repair --remote {remote.name}` rewrites it",
            )
        )
    # a compressed object is compared with its own bytes' identity (agent.remote.compressed)
    recorded = {n: stored_view(e) or e for n, e in remote.catalog.files.items()}
    objects = remote.objects
    verified: list[str] = []
    reidentified: dict[str, dict[str, str]] = {}  # replaced objects whose bytes read back intact
    findings = remote.findings
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
                RemoteCheck(
                    name,
                    "missing",
                    "in the remote catalog, not on the remote; "
                    + heal_hint(store, remote, name, rec or {}),
                )
            )
            continue
        expected = dict(rec or {})
        local = store.catalog.get(name)

        def heal() -> str:
            return heal_hint(store, remote, name, expected)  # noqa: B023 - called in this pass

        if not expected.get("sha256") and local is not None and local.size == obj.info.size:
            expected = {"sha256": local.sha256, "size": local.size}
        if not expected:
            report.checks.append(RemoteCheck(name, "unrecorded", "not in the remote catalog yet"))
            continue
        if expected.get("size") is not None and expected["size"] != obj.info.size:
            detail = f"size {obj.info.size}, recorded {expected['size']}; {heal()}"
            report.checks.append(RemoteCheck(name, "corrupted", detail))
            continue
        hashes = dict(obj.info.hashes)
        if not set(hashes) & remote.provider.capabilities.hashes:
            hashes = dict(remote.provider.stat(name).hashes)  # listings may omit checksums
        same = compare_hashes(hashes, expected)
        replaced = f"changed since push: {obj.replaced}; " if obj.replaced else ""
        if same is False:
            state = "corrupted"
            detail = f"{replaced}checksum differs from the one recorded at push; {heal()}"
        elif obj.found and not deep:
            state, detail = "corrupted", f"{obj.found}; {heal()}"
        elif obj.replaced:
            state = "changed"
            detail = f"{replaced}its bytes may still be intact; {heal()} if they are not"
        elif same is None:
            state = "unverified"
            deep_cmd = f"model-safety verify --remote {remote.name} --deep"
            detail = f"no checksum in common; `{deep_cmd}` reads it back"
        else:
            state, detail = "ok", "size and checksums match"
        if deep and state != "corrupted" and expected.get("sha256"):
            try:
                model = ModelCheck.of(expected)  # a .zst: its model bytes checked in the same read
                actual = stream_sha256(
                    remote, name, obj.info.size, also=model.feed if model else None
                )
            except ProviderError as exc:
                state, detail = "corrupted", f"cannot be read back: {exc}; {heal()}"
            else:
                if actual == expected["sha256"] and model is not None and not model.ok():
                    state = "corrupted"
                    detail = f"does not decompress to its recorded model sha256: {model.why}"
                    findings.note(remote.name, name, obj.info.identity, detail, now_iso())
                    detail += f"; {heal()}"
                elif actual == expected["sha256"]:
                    if obj.replaced:
                        reidentified[name] = dict(obj.info.identity)
                        detail = "changed since push, but its bytes read back hash to its sha256"
                    else:
                        detail = "bytes read back and re-hashed: sha256 matches"
                    state = "ok"
                    findings.clear(remote.name, name)
                else:
                    state = "corrupted"
                    detail = "bytes read back hash to a different sha256"
                    findings.note(remote.name, name, obj.info.identity, detail, now_iso())
                    detail += f"; {heal()}"
        if state == "ok":
            verified.append(name)
        report.checks.append(RemoteCheck(name, state, detail, (rec or {}).get("verified_at")))
    for name in list(findings.by_remote.get(remote.name, {})):
        obj = objects.get(name)
        if obj is None or obj.found is None:
            findings.clear(remote.name, name)  # gone or replaced since: the finding is stale
    findings.save()
    verified = [n for n in verified if n in recorded]
    if verified and record:
        from agent.remote import catalog as remote_catalog

        when = now_iso()

        def edit(catalog: RemoteCatalog) -> None:
            for n in verified:
                catalog.mark_verified(n, when)
                if n in reidentified and n in catalog.files:
                    catalog.files[n]["object"] = reidentified[n]

        try:
            remote_catalog.update(remote.provider, edit)
        except (PermissionDenied, QuotaExceeded) as exc:
            # a read-only key (an auditor's, say) may still check the copies; only the
            # verified_at stamps are lost
            log.warning("remote %s: could not record the verification: %s", remote.name, exc)
        remote.refresh()
    report.seconds = time.monotonic() - started
    return report
