"""The one application object the root CLI group builds and every command receives (ctx.obj).

It loads the config and opens the store lazily, so ``--help`` and ``init`` work without a config
and nothing heavy is imported until a command needs it.
"""

from __future__ import annotations

import json
import logging
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

from agent.config import Config, config_path, load_config
from agent.secrets import redact

if TYPE_CHECKING:
    from agent.local.lock import Lock
    from agent.local.store import Store


_handler: logging.Handler | None = None


def _setup_logging(verbose: int) -> None:
    """Our log lines (the agent's and the providers') go to the current stderr, once, redacted;
    other libraries' loggers (botocore, googleapiclient) are left alone, so even -vv never prints
    their request dumps with signed headers."""
    global _handler
    from agent.secrets import RedactingFilter

    loggers = [logging.getLogger("agent"), logging.getLogger("providers")]
    for logger in loggers:
        if _handler is not None:
            logger.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    _handler.addFilter(RedactingFilter())
    # The agent's lines go to our handler only; the providers' also propagate, so a host that
    # logs (a training script using agent.api, pytest's caplog) still receives them, redacted.
    loggers[0].propagate = False
    for logger in loggers:
        logger.addHandler(_handler)
        logger.setLevel(
            logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
        )


class App:
    def __init__(self, config_file: str | None, verbose: int = 0) -> None:
        self.config_file = config_file
        self.verbose = verbose
        _setup_logging(verbose)

    @property
    def config_path(self):  # type: ignore[no-untyped-def]
        return config_path(self.config_file)

    @cached_property
    def config(self) -> Config:
        from agent import secrets

        config = load_config(self.config_file)
        secrets.register_environment()
        for remote in config.remotes:
            secrets.register(secrets.secret_values(remote.settings))
        if config.path is not None:
            for warning in secrets.config_warnings(config):
                self.warn(warning)
        return config

    @cached_property
    def store(self) -> Store:
        from agent.local.store import Store

        return Store(self.config)

    def lock(self, command: str) -> Lock:
        """The models-dir lock for a command that changes files; raises LockHeld when taken."""
        from agent.local.lock import Lock

        lock = Lock(self.config.state_dir, command).acquire()
        if lock.stale:
            self.warn(
                f"took over a stale lock left by pid {lock.stale.get('pid')} "
                f"(`{lock.stale.get('command')}` since {lock.stale.get('since')}), "
                "which is no longer running"
            )
        return lock

    # Everything the CLI prints goes through redact(): a secret that slipped into a message (an
    # SDK error quoting a signed URL, say) is masked before it reaches a terminal or a log file.
    def out(self, text: str = "") -> None:
        click.echo(redact(text))

    def warn(self, text: str) -> None:
        click.echo(redact(f"warning: {text}"), err=True)

    def out_json(self, data: Any) -> None:
        click.echo(redact(json.dumps(data, indent=2, default=str)))
