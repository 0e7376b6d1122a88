"""Bring a model back from a remote: after a dead disk, on a new machine, or to fetch versions.

``pull`` takes one remote; ``pull_first`` tries the configured remotes in order, per model,
until one holds a good copy of what was asked (``pull --all``).

What ``--version`` names is agent.remote.wanted. Only names of configured models that are plain
file names are taken (agent.remote.connect); every byte is checked against the remote catalog's
sha256 (or, without a catalog, the provider's own checksums: agent.remote.adopt) while it is
written to a temp file beside its final name. A copy is known by its content: a file whose sha256
is known comes from its cheapest intact copy (a local file that holds it, the object, the same
content under another name, another remote: agent.remote.heal). A local file that differs from
what replaces it is kept aside first, never overwritten; the local catalog is rebuilt as files land.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import logging
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
from agent.remote.connect import Remote, RemoteObject, about_remote, sweep_download_journals
from agent.remote.heal import RemotePool, heal_local
from agent.remote.tree_pull import pull_tree_model, remote_trees
from agent.remote.wanted import models_asked, select
from agent.rules.naming import replaced_name
from providers import fileio
from providers.errors import IntegrityError, ProviderError

if TYPE_CHECKING:
    from agent.config import ModelConfig, RemoteConfig
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


def pull(store: Store, remote: Remote, model: str | None, version: str = "latest") -> PullReport:
    started = time.monotonic()
    report = PullReport(remote.name)
    models = models_asked(store.config, model, version)
    _prepare(store)
    remote.objects  # noqa: B018 - lists the remote, filling remote.skipped
    report.skipped.extend(remote.skipped)
    # the other configured remotes, opened only if an object here turns out damaged
    pool = RemotePool(store, list(store.config.remotes))
    with pool:
        for m in models:
            if not _pull_model(store, remote, m, version, report, pool):
                _not_served(
                    report,
                    len(models),
                    f"remote {remote.name} has no good copy of {m.name} for --version "
                    f"{version}; see `model-safety list {m.name} --remote {remote.name}`",
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
    configs = {rc.name: rc for rc in [*remotes, *store.config.remotes]}
    with RemotePool(store, list(configs.values())) as pool:
        reachable: dict[str, Remote | None] = {}
        unreachable: list[str] = []

        def open_listed(rc: RemoteConfig) -> Remote | None:
            if rc.name not in reachable:
                try:
                    remote = pool.get(rc.name)
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
                if remote is not None and _pull_model(store, remote, m, version, report, pool):
                    report.done.append(f"{m.name}: served by remote {remote.name}")
                    served += [remote.name] if remote.name not in served else []
                    break
            else:
                tried = ", ".join(rc.name for rc in remotes)
                down = f" ({', '.join(unreachable)} could not be reached)" if unreachable else ""
                _not_served(
                    report,
                    len(models),
                    f"no remote ({tried}) has a good copy of {m.name} for --version {version}"
                    f"{down}; see `model-safety list {m.name} --remote NAME`",
                )
    _save_catalog(store)
    report.remote = ", ".join(served)
    report.seconds = time.monotonic() - started
    return report


def _not_served(report: PullReport, asked: int, message: str) -> None:
    """A model no remote could serve: the error when it was the one asked for; one of several
    (a pull of every configured model) is a problem, and the others are still pulled."""
    if asked == 1:
        raise NothingToRestore(message)
    report.problems.append(message)


def _pull_model(
    store: Store,
    remote: Remote,
    m: ModelConfig,
    version: str,
    report: PullReport,
    pool: RemotePool | None = None,
) -> bool:
    """Fetch what ``version`` names of model ``m`` from ``remote``; False if it has no good copy."""
    if m.directory or remote_trees(remote, m):
        return pull_tree_model(store, remote, m, version, report)
    chosen = select(remote, m, version)
    if not chosen:
        return False
    needed = sum(o.info.size for o in chosen if not _have(store, o))
    store.check_space(needed)
    for obj in chosen:
        _fetch(store, remote, obj, report, pool)
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
    sweep_download_journals(store)


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


def _fetch(
    store: Store,
    remote: Remote,
    obj: RemoteObject,
    report: PullReport,
    pool: RemotePool | None = None,
) -> None:
    path = store.path(obj.name)
    expected = _expected_sha(obj)
    same = "" if expected else already_here(remote.provider, obj.name, path)
    if _have(store, obj) or same:
        report.done.append(f"{obj.name}: already here" + (f" (same {same})" if same else ""))
        _register(store, remote, obj, store.sha256(path))
        return
    if path.exists():
        _keep_aside(store, obj, report)
    if expected:
        _fetch_content(store, remote, obj, expected, pool, report)
        return
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


def _fetch_content(
    store: Store,
    remote: Remote,
    obj: RemoteObject,
    sha: str,
    pool: RemotePool | None,
    report: PullReport,
) -> None:
    """Bring ``obj``'s content (``sha``) here from its cheapest intact copy: a local file that
    holds it already, the object itself, the same content under another name on this remote,
    or another configured remote (agent.remote.heal)."""
    try:
        out = heal_local(store, obj.name, sha, obj.info.size, remote, pool)
    except OSError as exc:
        if exc.errno == errno.ENOSPC and not exc.filename:
            # whatever the backend, the message names the file system that is full
            raise OSError(exc.errno, exc.strerror, str(store.models_dir)) from exc
        raise
    for bad in out.bad_sources:
        report.problems.append(
            f"{obj.name}: source passed over: {bad}; `model-safety repair` heals it"
        )
    if out.how is None:
        # the reasons go with the error: the report they were added to is not printed after it
        why = "".join(f"; {bad}" for bad in out.bad_sources)
        raise IntegrityError(
            f"{obj.name}: no intact copy of its content on {remote.name}, here or on another "
            f"remote{why}"
        )
    _register(store, remote, obj, sha)
    report.files += 1
    if out.info is not None:
        report.bytes_received += out.info.size
    report.checks[obj.name] = "sha256"
    if out.how == f"pulled from {obj.name} on {remote.name}":
        report.done.append(f"pulled {obj.name} from {remote.name} (checked: sha256)")
    else:
        report.done.append(f"{obj.name}: {out.how} (same content, checked: sha256)")


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
        from agent.local.copies import quarantine

        # a corrupted copy: its bytes are worth little, but never destroy bytes silently
        aside = quarantine(store, obj.name)
        report.done.append(f"{obj.name}: corrupted local copy moved to {aside}")
        return
    aside_name = replaced_name(obj.ident.base, dt.datetime.now())
    fileio.replace(path, store.path(aside_name))
    store.adopt(
        store.path(aside_name), sha256=sha, source="pull", note=f"local {obj.name} before pull"
    )
    report.done.append(f"{obj.name}: kept the local file aside as {aside_name}")
