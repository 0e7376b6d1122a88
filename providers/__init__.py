"""Storage providers behind one interface; backends are imported only when opened.

``open_provider(name, settings)`` takes one entry of the config's ``remotes:`` mapping
(``type: local|s3|gdrive`` plus that type's keys) and returns a Provider wrapped in the one retry
layer. Agent-level keys of a remote (``retention``, ``auto_push``) are ignored here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from providers.base import Backend, Capabilities, ObjectInfo, Provider
from providers.config import COMMON_KEYS, check_remote
from providers.errors import ConfigError

__all__ = [
    "AGENT_KEYS",
    "BACKENDS",
    "Backend",
    "Capabilities",
    "ObjectInfo",
    "Provider",
    "open_provider",
]

# type -> (module, factory, what to install when the SDK is missing)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "local": ("providers.local", "LocalProvider", None),
    "s3": ("providers.s3", "S3Provider", "pip install 'model-safety[s3]'  (installs boto3)"),
    "gdrive": (
        "providers.gdrive",
        "DriveProvider",
        "pip install 'model-safety[gdrive]'  (installs pydrive2)",
    ),
}

# Keys of a remote entry that belong to the agent, not to the backend.
AGENT_KEYS = frozenset(COMMON_KEYS)


def open_provider(
    name: str, settings: Mapping[str, Any], *, state_dir: Path | None = None
) -> Provider:
    """Open remote ``name``. ``state_dir`` is where the backend may keep journals (resumable
    uploads); the agent passes ``<models_dir>/.model-safety/remotes/<name>``. When None, backends
    use ``~/.cache/model-safety/<type>-<name>``."""
    check_remote(name, settings)
    kind = settings["type"]
    module_name, factory_name, hint = BACKENDS[kind]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if hint and exc.name and not exc.name.startswith(("providers", "agent")):
            raise ConfigError(
                f"remote {name!r} (type {kind}) needs {exc.name!r}, which is not installed: {hint}"
            ) from exc
        raise
    backend_settings = {k: v for k, v in settings.items() if k not in AGENT_KEYS}
    backend: type[Backend] = getattr(module, factory_name)
    provider = backend.from_settings(name, backend_settings, state_dir=state_dir)
    from providers.retry import RetryingProvider, RetryPolicy

    return RetryingProvider(provider, RetryPolicy.from_settings(settings.get("retry") or {}))
