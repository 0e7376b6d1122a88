"""The ``retention:`` blocks of config.yaml: the global one (the models dir's rules besides
``max_backups``, and the policy of every remote without its own) and each remote's, which
replaces the global one as a whole. Mistakes are one-line ConfigErrors naming the key."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError
from agent.rules.retention import RetentionPolicy

if TYPE_CHECKING:
    from agent.config import Config, RemoteConfig

BLOCK = "MODEL_SAFETY"


def policy(raw: Any, max_backups: int, where: str) -> RetentionPolicy:
    """The policy a ``retention:`` mapping (None: empty) describes; ``max_backups`` is its
    keep_last unless it names one (agent.rules.retention.RetentionPolicy.from_mapping)."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}.retention: expected a mapping")
    try:
        return RetentionPolicy.from_mapping(raw, default_keep_last=max_backups)
    except ValueError as exc:
        raise ConfigError(f"{where}.{exc}") from exc


def global_rules(raw: Any, max_backups: int) -> tuple[tuple[str, int], ...]:
    """The global ``retention:`` rules, checked now so that every command refuses a mistake."""
    if isinstance(raw, Mapping) and "keep_last" in raw:
        raise ConfigError(
            f"{BLOCK}.retention.keep_last: the local keep_last is max_backups; set that instead"
        )
    policy(raw, max_backups, BLOCK)
    return tuple((raw or {}).items())


def with_global_default(
    remotes: tuple[RemoteConfig, ...],
    raw: Mapping[str, Any],
    rules: tuple[tuple[str, int], ...],
    max_backups: int,
) -> tuple[RemoteConfig, ...]:
    """Each remote whose entry has no ``retention:`` of its own follows the global rules."""
    if not rules:
        return remotes
    return tuple(
        rc
        if (raw.get(rc.name) or {}).get("retention")
        else dataclasses.replace(rc, retention=policy(dict(rules), max_backups, BLOCK))
        for rc in remotes
    )


def local_policy(config: Config) -> RetentionPolicy:
    """The models dir's policy: keep_last max_backups plus the global rules (keep_within_days
    without keep_last turns max_backups into its cap)."""
    return RetentionPolicy.from_mapping(
        dict(config.retention), default_keep_last=config.max_backups
    )
