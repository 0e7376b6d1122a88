"""The ``model-safety`` command line: a root click group that builds one App (hatch style) and
one small module per command group under ``agent/cli/commands/``.

To add commands, append a module to COMMAND_MODULES; it must define ``COMMANDS``, a list of click
commands. Nothing here imports torch or boto3, so ``model-safety --help`` stays fast.
"""

from __future__ import annotations

import errno
import importlib
import sys

import click

from agent import __version__
from agent.cli.app import App
from agent.config import ENV_CONFIG
from agent.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, AgentError
from agent.secrets import redact

COMMAND_MODULES = [
    "agent.cli.commands.init",
    "agent.cli.commands.backup",
    "agent.cli.commands.restore",
    "agent.cli.commands.inspect",
    "agent.cli.commands.prune",
    "agent.cli.commands.run",
    "agent.cli.commands.remote",
    "agent.cli.commands.guard",
    "agent.cli.commands.validate",
    "agent.cli.commands.diff",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    metavar="PATH",
    envvar=ENV_CONFIG,
    help=f"Config file (default ./config.yaml; also ${ENV_CONFIG}).",
)
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
@click.version_option(__version__, prog_name="model-safety")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, verbose: int) -> None:
    """Keep every version of your model checkpoints safe and restorable.

    Exit codes: 0 ok, 1 error, 2 usage, 3 problems found, 4 another run holds the lock,
    130 interrupted.
    """
    ctx.obj = App(config_file, verbose)


for _module in COMMAND_MODULES:
    for _command in importlib.import_module(_module).COMMANDS:
        cli.add_command(_command)


def _os_error_message(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno == errno.EROFS:
        return f"cannot write{where}: the file system is read-only; remount it read-write"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}; check the permissions of the models dir"
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing{where}; nothing was changed; free space and retry"
    return f"{exc.strerror or exc}{where}"


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="model-safety", standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("interrupted; no partial file was left behind", err=True)
            sys.exit(EXIT_INTERRUPTED)
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("interrupted; no partial file was left behind", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except AgentError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(redact(f"error: {_os_error_message(exc)}"), err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
