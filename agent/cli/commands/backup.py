"""``model-safety backup``: the pre-update backup slot or a dated version."""

from __future__ import annotations

import click

from agent.cli.commands import model_argument, pass_app


@click.command()
@model_argument
@click.option(
    "--kind",
    type=click.Choice(["pre-update", "version"]),
    default="pre-update",
    show_default=True,
    help="pre-update: <stem>_backup<ext>; version: <stem>_vYYYY-MM-DD<ext>.",
)
@click.option("--note", default=None, help="A note kept in the catalog.")
@click.option(
    "--allow-failing",
    is_flag=True,
    help="Keep the copy even if the model fails the check (it is never pushed).",
)
@pass_app
def backup(app, model: str | None, kind: str, note: str | None, allow_failing: bool) -> int:  # type: ignore[no-untyped-def]
    """Copy the current model and its companions, verified and atomic.

    A model that fails the check (unsafe to load, NaN or Inf, damaged) is not copied unless
    --allow-failing is given: it would take the place of a good copy. Exit 3 then."""
    from agent.local.backup import backup_model

    with app.lock(f"backup --kind {kind}"):
        result = backup_model(app.store, model, kind, note, allow_failing=allow_failing)
    for warning in result.warnings:
        app.warn(warning)
    app.out(result.message)
    return 0


COMMANDS = [backup]
