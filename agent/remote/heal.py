"""Heal a copy from any intact copy with the same content, wherever it is.

A copy is known by its sha256 and size, not its name. To put content back under a name on a
remote, the sources are tried cheapest first:

1. the same remote under another name, copied server-side (the bytes never travel);
2. a file on this machine (agent.local.copies: the local copy under that name, another version,
   the backup slot, the current file, a set-aside or quarantined file), checked before it leaves;
3. another configured remote, fetched through a verified temp file in the state dir.

To put content back under a local name: a local copy first (no transfer at all), then this
remote, then the others. Every source is verified before it is trusted: a remote object counts
only while it is the object push recorded and nothing found it damaged, and every transfer checks
the sha256 of the bytes it moves, so a source whose bytes fail is reported and passed over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import progress
from agent.checks.verdicts import refusal
from agent.errors import AgentError
from agent.faultpoints import crash_point
from agent.local.copies import heal_from_local, local_copies, quarantine
from agent.local.stored import compress_into, remember_healed
from agent.remote.compressed import fetch_form
from agent.remote.connect import Remote, RemoteObject, about_remote, opened_remote
from agent.remote.prune import remote_good
from providers.base import ObjectInfo
from providers.errors import IntegrityError, NotFound, ProviderError
from providers.ranges import RangeHashes

if TYPE_CHECKING:
    from agent.config import RemoteConfig
    from agent.local.store import Store

log = logging.getLogger(__name__)

HEAL_DIR = "heal"  # under the state dir: content fetched from one remote on its way to another


class RemotePool(contextlib.ExitStack):
    """The configured remotes, each opened (and listed) on first use; one that cannot be reached
    is noted in ``unreachable`` and passed over as a source."""

    def __init__(self, store: Store, configs: list[RemoteConfig]) -> None:
        super().__init__()
        self.store = store
        self.configs = {c.name: c for c in configs}
        self._open: dict[str, Remote | None] = {}
        self.unreachable: list[str] = []

    def get(self, name: str) -> Remote:
        remote = self._open.get(name)
        if remote is None:
            remote = self.enter_context(opened_remote(self.store, self.configs[name]))
            self._open[name] = remote
        return remote

    def others(self, name: str) -> Iterator[Remote]:
        for other in self.configs:
            if other == name:
                continue
            if other not in self._open:
                try:
                    self.get(other).objects  # noqa: B018 - list it now: unreachable is passed over
                except (AgentError, ProviderError) as exc:
                    self._open[other] = None
                    self.unreachable.append(about_remote(other, exc))
                    log.warning("%s", about_remote(other, exc))
            remote = self._open.get(other)
            if remote is not None:
                yield remote


@dataclass
class Outcome:
    """How a heal went: ``how`` names the source used (None: no intact copy anywhere)."""

    info: ObjectInfo | None = None
    how: str | None = None
    bad_sources: list[str] = field(default_factory=list)


def holders(remote: Remote, sha256: str, size: int, *, exclude: str = "") -> list[RemoteObject]:
    """Objects on ``remote`` that hold ``sha256``, by what was recorded at push or what the
    backend vouches for, and that count as intact (not replaced, not found damaged)."""
    found = []
    for obj in remote.objects.values():
        if obj.name == exclude or obj.info.size != size:
            continue
        sha = (obj.recorded or {}).get("sha256") or obj.info.hashes.get("sha256")
        if sha == sha256 and remote_good(remote, obj.name):
            found.append(obj)
    return found


def heal_hint(store: Store, remote: Remote, name: str, wanted: Mapping[str, Any]) -> str:
    """What to tell a user about a damaged or missing object whose content is ``wanted``
    (its sha256 and size): a command only when it can heal it."""
    cmd = f"`model-safety repair --remote {remote.name}`"
    sha, size = wanted.get("sha256"), wanted.get("size")
    if not sha or size is None:
        return f"nothing records what it held; {cmd} re-sends it if a local copy has its name"
    if holders(remote, sha, size, exclude=name) or next(local_copies(store, sha, size), None):
        return f"{cmd} heals it"
    others = [c.name for c in store.config.remotes if c.name != remote.name]
    if others:
        return f"{cmd} heals it if {' or '.join(others)} holds an intact copy"
    return f"no intact copy of its content is left here or on {remote.name}"


def heal_remote(
    store: Store,
    remote: Remote,
    name: str,
    sha256: str,
    size: int,
    pool: RemotePool | None,
    *,
    healed: dict[str, str] | None = None,
) -> Outcome:
    """Put ``sha256`` under ``name`` on ``remote`` from the cheapest intact copy. Bytes sent from
    this machine pass the checker first (agent.checks.verdicts.refusal): content that fails it
    is only ever copied server-side, which moves nothing off the machine. ``healed`` (sha256 ->
    name) holds what this run already put back on ``remote``: the first source, so content
    crosses the wire once per repair."""
    out = Outcome()
    expected = {"sha256": sha256}
    copy = remote.provider.capabilities.copy
    if copy is not None:
        just_healed = (healed or {}).get(sha256)
        again = [remote.objects[just_healed]] if just_healed in remote.objects else []
        for src in [*again, *holders(remote, sha256, size, exclude=name)]:
            try:
                info = copy(src.name, name)
            except ProviderError as exc:
                out.bad_sources.append(f"{src.name} on {remote.name}: cannot be copied ({exc})")
                continue
            if info.size == size and info.hashes.get("sha256", sha256) == sha256:
                out.info, out.how = info, f"copied server-side from {src.name}"
                return out
            out.bad_sources.append(f"{src.name} on {remote.name}: its copy came out different")
    for local in local_copies(store, sha256, size):
        refused = refusal(store, name, sha256, local.path)
        if refused:
            out.bad_sources.append(f"not sent from this machine: {refused}")
            return out
        try:
            out.info = _upload(remote, name, local.path, sha256)
        except IntegrityError as exc:
            out.bad_sources.append(f"{local.what}: its bytes do not hash to {sha256[:12]} ({exc})")
            store.cache.forget(local.path.name)
            continue
        out.how = f"uploaded from {local.what}"
        return out
    for other in pool.others(remote.name) if pool is not None else ():
        for src in sorted(holders(other, sha256, size), key=lambda o: o.name != name):
            temp = store.state_dir / HEAL_DIR / sha256
            try:
                _fetch(other, src.name, temp, expected)
                crash_point("heal-fetched")  # test-only: content here, not yet on the target
                refused = refusal(store, name, sha256, temp)
                if refused:
                    out.bad_sources.append(f"{src.name} on {other.name}: not sent: {refused}")
                    return out
                out.info = _upload(remote, name, temp, sha256)
            except IntegrityError as exc:
                out.bad_sources.append(f"{src.name} on {other.name}: {exc}")
                continue
            except ProviderError as exc:
                out.bad_sources.append(f"{src.name}: {about_remote(other.name, exc)}")
                continue
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
            out.how = f"copied from {src.name} on {other.name}"
            return out
    return out


def heal_local(
    store: Store, name: str, sha256: str, size: int, remote: Remote | None, pool: RemotePool | None
) -> Outcome:
    """Put ``sha256`` back under ``name`` in the models dir: from a local file holding it, else
    from ``remote`` (under any name), else from the other remotes. A damaged file in the way goes
    to quarantine first."""
    healed = heal_from_local(store, name, sha256, size)
    out = Outcome(how=f"copied from {healed.source}" if healed.source else None)
    out.bad_sources += healed.bad_sources
    if out.how:
        return out
    remotes = [remote] if remote is not None else []
    remotes += list(pool.others(remote.name if remote else "")) if pool is not None else []
    for r in remotes:
        # the object under the same name first, even one not known good: the download checks
        # every byte against sha256, so a bad one costs a read and is reported, nothing more
        same_name = [r.objects[name]] if name in r.objects else []
        for src in [*same_name, *holders(r, sha256, size, exclude=name)]:
            # a .zst fetched as it is, or plain bytes compressed into place (agent.local.stored)
            how = fetch_form(store, name, src.name, src.recorded, src.info.size, sha256, size)
            if how is None:
                continue
            dest = store.path(name)
            fetch_to, fetch_sha = how
            try:
                if dest.exists():
                    quarantine(store, name)
                out.info = _fetch(r, src.name, fetch_to, {"sha256": fetch_sha})
                if fetch_to != dest:
                    compress_into(store, fetch_to, dest, sha256)
            except IntegrityError as exc:
                out.bad_sources.append(f"{src.name} on {r.name}: {exc}")
                continue
            except ProviderError as exc:
                out.bad_sources.append(f"{src.name} on {r.name}: {about_remote(r.name, exc)}")
                continue
            remember_healed(store, dest, sha256)
            ranges = recorded_ranges(r, src.name, sha256)
            if ranges is not None and ranges.fits(size):
                store.ranges.put(sha256, ranges)  # the next delta push needs no read of it
            out.how = f"pulled from {src.name} on {r.name}"
            return out
    return out


def _fetch(remote: Remote, key: str, dest: Path, expected: dict[str, str]) -> ObjectInfo:
    dest.parent.mkdir(parents=True, exist_ok=True)
    obj = remote.objects.get(key)
    size = obj.info.size if obj is not None else None
    # the range hashes recorded with this very content let the download check each range as it
    # arrives instead of hashing the whole file after it
    ranges = recorded_ranges(remote, key, expected.get("sha256"))
    extra = {"expected_ranges": ranges} if ranges is not None else {}
    with progress.bar(f"{remote.name} -> {dest.name}", size) as advance:
        try:
            return remote.provider.get(
                key, dest, expected_hashes=expected, progress=advance, **extra
            )
        except NotFound as exc:
            raise ProviderError(f"{key} is gone from {remote.name}") from exc


def recorded_ranges(remote: Remote, key: str, sha256: str | None) -> RangeHashes | None:
    """The range hashes the remote catalog recorded for ``key``, if recorded with ``sha256``."""
    obj = remote.objects.get(key)
    recorded = (obj.recorded or {}) if obj is not None else {}
    if sha256 is None or recorded.get("sha256") != sha256:
        return None
    return RangeHashes.from_json(recorded.get("ranges"))


def _upload(remote: Remote, name: str, path: Path, sha256: str) -> ObjectInfo:
    with progress.bar(f"{remote.name} <- {name}", path.stat().st_size) as advance:

        def moved(n: int) -> None:
            if advance is not None:
                advance(n)
            crash_point("heal-upload-progress")  # test-only: part of a heal upload sent

        return remote.provider.put(name, path, expected_hashes={"sha256": sha256}, progress=moved)


def clean_heal_dir(store: Store, max_age_s: float = 86400) -> None:
    """Content a killed heal left in the state dir: the next heal of the same content fetches it
    again (resuming), so only what nobody came back for within a day goes."""
    heal_dir = store.state_dir / HEAL_DIR
    if not heal_dir.is_dir():
        return
    now = time.time()
    for path in heal_dir.iterdir():
        with contextlib.suppress(OSError):
            if path.is_file() and now - path.stat().st_mtime > max_age_s:
                os.unlink(path)


def heal_copy_from_remotes(store: Store, model: str, source: str | None) -> list[str]:
    """For ``restore``: bring back, from the configured remotes, the damaged or missing files of
    the first copy ``source`` names (agent.local.restore.candidates) that can be made whole; one
    line per file healed, empty when none could be."""
    from agent.local.restore import candidates

    tries, _ = candidates(store, store.config.model(model), source)
    with RemotePool(store, list(store.config.remotes)) as pool:
        for entry in tries:
            lines = []
            for name in [*entry.companions.values(), entry.name]:
                part = store.catalog.get(name)
                if part is None:
                    break
                if store._file_state(part, fresh=True) == "ok":
                    continue
                out = heal_local(store, name, part.sha256, part.size, None, pool)
                if out.how is None:
                    break
                lines.append(f"{name} was damaged or missing; healed here ({out.how})")
            else:
                store.save()
                if lines:
                    return lines
    return []
