"""What ``pull --version`` names: ``latest``, ``backup``, ``all``, a date, or one copy's file
name, turned into the remote objects to fetch for one model (companions before the model file).
Only plain names of configured models' files are taken."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING

from agent.errors import AgentError
from agent.remote.connect import Remote, RemoteObject
from agent.remote.prune import remote_good
from agent.rules.naming import Identity, identify, is_plain_name

if TYPE_CHECKING:
    from agent.config import Config, ModelConfig


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
        # asked by name, even a damaged object is taken: its content may come from another
        # intact copy (agent.remote.heal), and every byte is checked on the way in
        if obj is None or obj.ident.model != m.name:
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
    return [config.model(model)] if model else list(config.models)
