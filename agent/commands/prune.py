"""``model-safety prune``: apply local retention to dated versions."""

from __future__ import annotations

import contextlib

import click

from agent.commands import json_option, model_argument, pass_app
from agent.retention import Decision


def print_decisions(app, decisions: list[Decision], dry_run: bool) -> None:  # type: ignore[no-untyped-def]
    for d in decisions:
        verb = "keep  " if d.keep else ("would delete" if dry_run else "delete")
        app.out(f"{verb}  {d.name}: {'; '.join(d.reasons)}")
    if not decisions:
        app.out("no dated versions to prune")


@click.command()
@model_argument
@click.option("--dry-run", is_flag=True, help="Only print what would be kept and deleted, and why.")
@json_option
@pass_app
def prune(app, model: str | None, dry_run: bool, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    """Keep the newest max_backups dated versions (never fewer than 2); delete the rest."""
    guard = contextlib.nullcontext() if dry_run else app.lock("prune")
    with guard:
        decisions = app.store.prune(model, dry_run=dry_run)
    if as_json:
        app.out_json(
            {
                "dry_run": dry_run,
                "decisions": [
                    {"name": d.name, "keep": d.keep, "reasons": list(d.reasons)} for d in decisions
                ],
            }
        )
    else:
        print_decisions(app, decisions, dry_run)
    return 0


COMMANDS = [prune]
