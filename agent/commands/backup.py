"""``model-safety backup``: the pre-update backup slot or a dated version."""

from __future__ import annotations

import click

from agent.commands import model_argument, pass_app


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
@pass_app
def backup(app, model: str | None, kind: str, note: str | None) -> int:  # type: ignore[no-untyped-def]
    """Copy the current model and its companions, verified and atomic."""
    with app.lock(f"backup --kind {kind}"):
        result = app.store.backup(model, kind, note)
    for warning in result.warnings:
        app.warn(warning)
    app.out(result.message)
    return 0


COMMANDS = [backup]
