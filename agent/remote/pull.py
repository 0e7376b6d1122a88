"""Bring a model back from a remote: after a dead disk, on a new machine, or to fetch versions.

``pull`` takes one remote; ``pull_first`` tries the configured remotes in order, per model,
until one holds a good copy of what was asked (``pull --all``).

Only names of configured models that are plain file names are taken (agent.remote.connect); every
byte is checked against the remote catalog's sha256 (or, without a catalog, the provider's own
checksums) while it is written to a temp file beside its final name; a local file that differs from
what replaces it is kept aside first, never overwritten; the local catalog is rebuilt as files land.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent import progress
from agent.errors import AgentError, NothingToRestore
from agent.faultpoints import crash_point
from agent.local.restore import restore_model
from agent.progress import human_size
from agent.remote.adopt import already_here, fetch
from agent.remote.connect import Remote, RemoteObject, about_remote, opened_remote
from agent.remote.prune import remote_good
from agent.rules.naming import Identity, identify, is_plain_name, replaced_name
from providers.errors import ProviderError

if TYPE_CHECKING:
    from agent.config import Config, ModelConfig, RemoteConfig
    from agent.local.store import Store

log = logging.getLogger(__name__)


@dataclass
class PullReport:
    remote: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)  # file pulled -> the check it got
    files: int = 0
    bytes_received: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.remote}: {self.files} file(s), {human_size(self.bytes_received)} received, "
            f"{self.seconds:.1f}s" + (f", {len(self.problems)} problem(s)" if self.problems else "")
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


def _sort_key(obj: RemoteObject) -> tuple[dt.date, int]:
    return (obj.ident.date or dt.date.min, obj.ident.seq)


def select(remote: Remote, m: ModelConfig, version: str) -> list[RemoteObject]:
    """The remote objects ``version`` names for model ``m``, companions before the model file."""
    mine = [o for o in remote.objects.values() if o.ident.model == m.name]

    def group(kind: str, date: dt.date | None = None, seq: int | None = None) -> list[RemoteObject]:
        chosen = [
            o
            for o in mine
            if o.ident.kind == kind
            and (date is None or o.ident.date == date)
            and (seq is None or o.ident.seq == seq)
        ]
        return sorted(chosen, key=lambda o: o.ident.companion is None)

    def newest_good_version(on: dt.date | None = None) -> list[RemoteObject]:
        models = [
            o
            for o in mine
            if o.ident.kind == "version"
            and o.ident.companion is None
            and (on is None or o.ident.date == on)
            and remote_good(remote, o.name)
        ]
        if not models:
            return []
        best = max(models, key=_sort_key)
        return group("version", best.ident.date, best.ident.seq)

    named = named_file(remote.store.config, version)
    if named is not None:
        obj = remote.objects.get(version)
        if obj is None or obj.ident.model != m.name or not remote_good(remote, version):
            return []
        if named.kind in ("current", "backup", "version"):
            return group(named.kind, named.date if named.kind == "version" else None, named.seq)
        return [obj]
    if version == "all":
        return sorted(mine, key=lambda o: (o.ident.kind, _sort_key(o), o.ident.companion is None))
    if version == "backup":
        return group("backup")
    if version == "latest":
        current = [o for o in group("current") if o.ident.companion is None]
        if current and remote_good(remote, current[0].name):
            return group("current")
        return newest_good_version()
    try:
        day = dt.date.fromisoformat(version)
    except ValueError:
        raise AgentError(_BAD_VERSION.format(version=version)) from None
    return newest_good_version(day)


_BAD_VERSION = (
    "--version {version!r} is not latest, backup, all, a date (YYYY-MM-DD) or the file name of "
    "a configured model's copy"
)


def named_file(config: Config, version: str) -> Identity | None:
    """The file ``--version`` names (as ``restore --from FILENAME`` does), or None for latest,
    backup, all and dates. Only plain names of configured models' files are taken."""
    if version in ("latest", "backup", "all"):
        return None
    with contextlib.suppress(ValueError):
        dt.date.fromisoformat(version)
        return None
    ident = identify(version, config.models) if is_plain_name(version) else None
    if ident is None:
        raise AgentError(_BAD_VERSION.format(version=version))
    if ident.companion is not None:
        raise AgentError(f"--version {version}: a companion copy; name the model file instead")
    return ident


def models_asked(config: Config, model: str | None, version: str) -> list[ModelConfig]:
    named = named_file(config, version)
    if named is not None:
        if model is not None and config.model(model).name != named.model:
            raise AgentError(f"--version {version} is a file of {named.model}, not of {model}")
        return [config.model(named.model)]
    return [config.model(model)] if model or version != "all" else list(config.models)


def pull(store: Store, remote: Remote, model: str | None, version: str = "latest") -> PullReport:
    started = time.monotonic()
    report = PullReport(remote.name)
    models = models_asked(store.config, model, version)
    _prepare(store)
    remote.objects  # noqa: B018 - lists the remote, filling remote.skipped
    report.skipped.extend(remote.skipped)
    for m in models:
        if not _pull_model(store, remote, m, version, report):
            raise NothingToRestore(
                f"remote {remote.name} has no good copy of {m.name} for --version {version}; "
                f"see `model-safety list {m.name} --remote {remote.name}`"
            )
    _save_catalog(store)
    report.seconds = time.monotonic() - started
    return report


def pull_first(
    store: Store, remotes: Sequence[RemoteConfig], model: str | None, version: str = "latest"
) -> PullReport:
    """Per model, the first of ``remotes`` (in config order) that holds a good copy of what
    ``version`` asks for serves it. A remote that cannot be reached or listed is passed over
    (and named in ``skipped``)."""
    started = time.monotonic()
    report = PullReport("")
    models = models_asked(store.config, model, version)
    _prepare(store)
    served: list[str] = []
    with contextlib.ExitStack() as stack:
        reachable: dict[str, Remote | None] = {}
        unreachable: list[str] = []

        def open_listed(rc: RemoteConfig) -> Remote | None:
            if rc.name not in reachable:
                try:
                    remote = stack.enter_context(opened_remote(store, rc))
                    remote.objects  # noqa: B018 - lists it now, so an error here passes it over
                except (AgentError, ProviderError) as exc:
                    report.skipped.append(about_remote(rc.name, exc))
                    unreachable.append(rc.name)
                    reachable[rc.name] = None
                else:
                    report.skipped.extend(f"{rc.name}: {line}" for line in remote.skipped)
                    reachable[rc.name] = remote
            return reachable[rc.name]

        for m in models:
            for rc in remotes:
                remote = open_listed(rc)
                if remote is not None and _pull_model(store, remote, m, version, report):
                    report.done.append(f"{m.name}: served by remote {remote.name}")
                    served += [remote.name] if remote.name not in served else []
                    break
            else:
                tried = ", ".join(rc.name for rc in remotes)
                down = f" ({', '.join(unreachable)} could not be reached)" if unreachable else ""
                raise NothingToRestore(
                    f"no remote ({tried}) has a good copy of {m.name} for --version {version}"
                    f"{down}; see `model-safety list {m.name} --remote NAME`"
                )
    _save_catalog(store)
    report.remote = ", ".join(served)
    report.seconds = time.monotonic() - started
    return report


def _pull_model(
    store: Store, remote: Remote, m: ModelConfig, version: str, report: PullReport
) -> bool:
    """Fetch what ``version`` names of model ``m`` from ``remote``; False if it has no good copy."""
    chosen = select(remote, m, version)
    if not chosen:
        return False
    needed = sum(o.info.size for o in chosen if not _have(store, o))
    store.check_space(needed)
    for obj in chosen:
        _fetch(store, remote, obj, report)
        crash_point("pull-fetched")  # test-only: one file in place, local catalog not saved
    store.save()
    if not store.path(m.file).exists():
        model_copy = next(o for o in reversed(chosen) if o.ident.companion is None)
        if model_copy.ident.kind != "current":
            result = restore_model(store, m.name, model_copy.name)
            report.done.append(result.message)
    return True


def _prepare(store: Store) -> None:
    store.models_dir.mkdir(parents=True, exist_ok=True)
    # read (or start) the local catalog before any file lands: loaded later, it would find the
    # pulled files uncatalogued and report itself lost
    store.catalog  # noqa: B018


def _save_catalog(store: Store) -> None:
    """Leave a local catalog written, even one that lists no copy yet (a pull of only the current
    file): a missing one would be reported as lost and rebuilt by the next command."""
    catalog = store.catalog
    if not catalog.path.exists():
        catalog.dirty = True
    store.save()


def _expected_sha(obj: RemoteObject) -> str | None:
    if obj.recorded and obj.recorded.get("sha256"):
        return str(obj.recorded["sha256"])
    return obj.info.hashes.get("sha256")


def _have(store: Store, obj: RemoteObject) -> bool:
    path = store.path(obj.name)
    sha = _expected_sha(obj)
    return path.is_file() and sha is not None and store.sha256(path) == sha


def _fetch(store: Store, remote: Remote, obj: RemoteObject, report: PullReport) -> None:
    path = store.path(obj.name)
    expected = _expected_sha(obj)
    same = "" if expected else already_here(remote.provider, obj.name, path)
    if _have(store, obj) or same:
        report.done.append(f"{obj.name}: already here" + (f" (same {same})" if same else ""))
        _register(store, remote, obj, store.sha256(path))
        return
    if path.exists():
        _keep_aside(store, obj, report)
    with progress.bar(f"{remote.name} -> {obj.name}", obj.info.size) as advance:
        try:
            info, check = fetch(
                remote.provider,
                obj.name,
                path,
                obj.info,
                expected_sha256=expected,
                progress_fn=advance,
            )
        except OSError as exc:
            if exc.errno == errno.ENOSPC and not exc.filename:
                # whatever the backend, the message names the file system that is full
                raise OSError(exc.errno, exc.strerror, str(store.models_dir)) from exc
            raise
    sha = expected or store.sha256(path, fresh=True)
    _register(store, remote, obj, sha)
    report.files += 1
    report.bytes_received += info.size
    report.checks[obj.name] = check
    report.done.append(f"pulled {obj.name} from {remote.name} (checked: {check})")


def _register(store: Store, remote: Remote, obj: RemoteObject, sha: str) -> None:
    path = store.path(obj.name)
    if obj.ident.kind == "current":
        store.cache.remember(path, sha)
        return
    rec = obj.recorded or {}
    created = None
    if rec.get("created"):
        try:
            created = dt.datetime.fromisoformat(rec["created"])
        except (TypeError, ValueError):
            created = None
    existing = store.catalog.get(obj.name)
    if existing is not None and existing.sha256 == sha:
        return
    store.adopt(
        path, sha256=sha, note=rec.get("note"), source=f"pull:{remote.name}", created=created
    )


def _keep_aside(store: Store, obj: RemoteObject, report: PullReport) -> None:
    """A local file is about to be replaced by different bytes: move it aside unless an intact
    copy of it exists elsewhere in the models dir."""
    path = store.path(obj.name)
    if not path.is_file():
        raise AgentError(f"{path} is in the way and is not a regular file; move it and pull again")
    sha = store.sha256(path)
    entry = store.catalog.get(obj.name)
    copies = [e for e in store.catalog if e.sha256 == sha and e.name != obj.name]
    if any(store.state_of(e).state == "ok" for e in copies):
        return
    if entry is not None and entry.sha256 != sha:
        from agent.remote.verify import quarantine

        # a corrupted copy: its bytes are worth little, but never destroy bytes silently
        aside = quarantine(store, obj.name)
        report.done.append(f"{obj.name}: corrupted local copy moved to {aside}")
        return
    aside_name = replaced_name(obj.ident.base, dt.datetime.now())
    os.replace(path, store.path(aside_name))
    store.adopt(
        store.path(aside_name), sha256=sha, source="pull", note=f"local {obj.name} before pull"
    )
    report.done.append(f"{obj.name}: kept the local file aside as {aside_name}")
