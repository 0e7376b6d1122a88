"""``model-safety restore``: put a copy back as the current model."""

from __future__ import annotations

import sys

import click

from agent.cli.commands import model_argument, pass_app
from agent.errors import NothingToRestore


@click.command()
@model_argument
@click.option(
    "--from",
    "source",
    metavar="backup|latest|YYYY-MM-DD|FILENAME",
    default=None,
    help="Which copy; default: the newest copy whose checksum still matches.",
)
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Do not ask for confirmation (required when stdin is not a terminal).",
)
@click.option(
    "--discard-current",
    is_flag=True,
    help="Do not keep the replaced current file aside (it is kept when no copy holds it).",
)
@pass_app
def restore(app, model: str | None, source: str | None, yes: bool, discard_current: bool) -> int:  # type: ignore[no-untyped-def]
    """Restore MODEL (and its companions) from a backup or version."""
    from agent.local.restore import restore_model

    m = app.config.model(model)
    if not yes:
        if not sys.stdin.isatty():
            # a script must say so: nobody is there to answer, and replacing the model
            # unasked is what a typo in a cron line would otherwise do (apt-get, dnf: -y)
            raise click.UsageError(
                f"restore replaces {m.file} and there is no terminal to ask on; "
                "add --yes to restore without asking"
            )
        click.confirm(
            f"Replace {m.file} in {app.config.models_dir} "
            f"from {source or 'the newest intact copy'}?",
            abort=True,
        )
    healed: list[str] = []
    with app.lock(f"restore {m.name}"):
        try:
            result = restore_model(app.store, m.name, source, discard_current)
        except NothingToRestore:
            # no intact copy here: a remote may hold the same content
            if not app.config.remotes:
                raise
            from agent.remote.heal import heal_copy_from_remotes

            healed = heal_copy_from_remotes(app.store, m.name, source)
            if not healed:
                raise
            result = restore_model(app.store, m.name, source, discard_current)
    for line in healed:
        app.out(line)
    for item in result.skipped:
        app.warn(f"skipped {item}")
    for warning in result.warnings:
        app.warn(warning)
    for name in result.kept_aside:
        app.out(f"kept the replaced file as {name}")
    app.out(result.message)
    return 0


COMMANDS = [restore]
