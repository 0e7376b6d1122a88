"""One remote as the agent sees it: the provider, what is there under our names, and its catalog.

This is the only place the agent turns remote names into local meaning, so the checks that keep
untrusted names out of ``models_dir`` live here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import RemoteConfig
from agent.errors import AgentError, DamagedCopy
from agent.progress import human_size
from agent.remote import catalog as remote_catalog
from agent.remote.catalog import CATALOG_KEY, RemoteCatalog, replaced_since_push
from agent.remote.compressed import stored_view
from agent.remote.findings import Findings
from agent.remote.trees import is_tree_object
from agent.rules.naming import Identity, identify, is_plain_name
from agent.rules.push_plan import RemoteFile
from providers import ObjectInfo, Provider, open_provider
from providers.errors import IntegrityError, ProviderError
from providers.journal import PARTIAL_KEPT_DAYS, sweep_downloads
from providers.names import portable_name_problem

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteObject:
    info: ObjectInfo
    ident: Identity
    recorded: dict | None  # the remote catalog's entry
    found: str | None = None  # damage `verify --deep` found in this very object (see findings)

    @property
    def name(self) -> str:
        return self.info.key

    @property
    def replaced(self) -> str:
        """How the object differs from the one push recorded ("" when it does not)."""
        return replaced_since_push(self.recorded, self.info.identity)

    def as_plan_input(self) -> RemoteFile:
        return RemoteFile(
            self.name,
            self.info.size,
            dict(self.info.hashes),
            self.recorded,
            replaced=bool(self.replaced),
        )


@dataclass
class Remote:
    config: RemoteConfig
    provider: Provider
    store: Store
    skipped: list[str] = field(default_factory=list)  # names not taken, each with why

    @classmethod
    def open(cls, store: Store, config: RemoteConfig) -> Remote:
        state_dir = store.state_dir / "remotes" / config.name
        try:
            provider = open_provider(config.name, config.settings, state_dir=state_dir)
        except ProviderError as exc:
            raise AgentError(str(exc)) from exc
        return cls(config, provider, store)

    @property
    def name(self) -> str:
        return self.config.name

    def close(self) -> None:
        self.provider.close()

    @cached_property
    def findings(self) -> Findings:
        return Findings.load(self.store.state_dir)

    @cached_property
    def catalog(self) -> RemoteCatalog:
        return remote_catalog.load(self.provider)

    def refresh(self) -> None:
        self.__dict__.pop("catalog", None)
        self.__dict__.pop("objects", None)

    @cached_property
    def objects(self) -> dict[str, RemoteObject]:
        """Objects under our names, by name. Anything else is skipped with a reason: names that
        are not a configured model's, that hold path separators or ``..``, or that would land
        outside ``models_dir``."""
        found: dict[str, RemoteObject] = {}
        self.skipped.clear()
        models_dir = self.store.models_dir.resolve()
        for info in self.provider.list(""):
            key = info.key
            if key == CATALOG_KEY or key.startswith(".model-safety/"):
                continue
            if is_tree_object(key, self.store.config.models):
                continue  # a file of a directory copy: agent.remote.trees
            why = unsafe_name(key, models_dir)
            ident = None if why else identify(key, self.store.config.models)
            if why is None and ident is None:
                why = "not a file of a configured model"
            if why:
                self.skipped.append(f"{key!r}: {why}")
                continue
            assert ident is not None
            damage = self.findings.damage(self.name, key, info.identity)
            recorded = stored_view(self.catalog.files.get(key))  # a .zst: its own bytes' identity
            found[key] = RemoteObject(info, ident, recorded, damage)
        for line in self.skipped:
            # foreign files are normal on a shared remote; only pull, which could be asked for
            # them, reports them to the user
            log.info("remote %s: skipped %s", self.name, line)
        return found


def sweep_download_journals(store: Store, *, expire: bool = False) -> None:
    """Drop every remote's download journals that nothing can resume (``sweep_downloads``): a
    pull killed after its file landed but before it cleared the journal leaves one that no later
    run would otherwise touch. With ``expire`` (the periodic job), a partial download nobody
    resumed for PARTIAL_KEPT_DAYS goes too, its temp file with it: a killed pull of a 50 GB model
    that was never retried would otherwise hold its bytes in the models dir for good (a pull
    resumes whatever is there, however old). The caller holds the models dir's lock."""
    max_age = PARTIAL_KEPT_DAYS * 86400 if expire else None
    for journals in store.download_journal_dirs():
        remote = journals.parent.name
        gone, freed = sweep_downloads(journals, max_age)
        if freed:
            log.warning(
                "remote %s: removed partial downloads nobody resumed for %d days (%s)",
                remote,
                PARTIAL_KEPT_DAYS,
                human_size(freed),
            )
        elif gone:
            log.info("remote %s: removed %d finished download journal(s)", remote, gone)


@contextlib.contextmanager
def opened_remote(store: Store, config: RemoteConfig) -> Iterator[Remote]:
    """The remote, with provider errors turned into one-line agent errors that name it."""
    remote = None
    try:
        remote = Remote.open(store, config)
        yield remote
    except IntegrityError as exc:
        # bytes that fail their check (nothing landed): problems found, not a failure to run
        raise DamagedCopy(about_remote(config.name, exc)) from exc
    except ProviderError as exc:
        raise AgentError(about_remote(config.name, exc)) from exc
    finally:
        if remote is not None:
            remote.close()


def about_remote(name: str, error: BaseException | str) -> str:
    """An error's text prefixed with the remote it is about, once: provider messages often name
    the remote themselves (``remote 'nas': ...``)."""
    text = str(error)
    if text.startswith((f"remote {name!r}", f"remote {name}:", f"remote {name} ")):
        return text
    return f"remote {name}: {text}"


def unsafe_name(name: str, models_dir: Path) -> str | None:
    """Why a remote name must not become a local path, or None when it is safe."""
    problem = portable_name_problem(name)
    if problem:
        return f"not a file name on every platform: {problem}"
    if not is_plain_name(name) or name.startswith("."):
        return "not a plain file name (path separators, '..' or a hidden name)"
    target = (models_dir / name).resolve()
    if target.parent != models_dir:
        return f"would land outside {models_dir}"
    return None
