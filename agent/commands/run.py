"""``model-safety run``: the periodic job (cron-safe)."""

from __future__ import annotations

import click

from agent.commands import json_option, pass_app
from agent.errors import EXIT_PROBLEMS
from agent.schedule import run_job


@click.command()
@json_option
@pass_app
def run(app, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    """Make a dated version when one is due and the model changed, then apply retention."""
    with app.lock("run"):
        report = run_job(app.store)
    if as_json:
        app.out_json(report.to_dict())
    else:
        for line in report.actions:
            app.out(line)
        for problem in report.problems:
            app.warn(problem)
    return EXIT_PROBLEMS if report.problems else 0


COMMANDS = [run]
