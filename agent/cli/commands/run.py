"""``model-safety run`` (the periodic job, cron-safe) and ``model-safety daemon``."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import click

from agent.cli.commands import json_option, pass_app
from agent.errors import EXIT_PROBLEMS


def periodic_job(
    app,
    *,
    today: dt.date | None = None,
    should_stop=lambda: False,
    emit: Callable[[str], None] | None = None,
) -> tuple[int, dict[str, Any], list[str]]:  # type: ignore[no-untyped-def]
    """One run: dated versions that are due, push to every auto_push remote with its
    retention, then local retention (keeping versions no remote holds yet).
    Returns (exit code, JSON report, human lines); ``emit`` is told each line as it happens."""
    from agent.local.age import compress_due
    from agent.local.schedule import run_job
    from agent.remote.connect import sweep_download_journals
    from agent.remote.overnight import mirror_and_prune

    lines: list[str] = []

    def line(text: str) -> None:
        lines.append(text)
        if emit is not None:
            emit(text)

    def remote_done(r) -> None:  # type: ignore[no-untyped-def]
        for d in r.decisions:
            if not d.keep:
                line(f"{r.remote}: deleted {d.name}: {'; '.join(d.reasons)}")
        line(r.summary())

    store = app.store
    with app.lock("run"):
        sweep_download_journals(store, expire=True)  # partial downloads nobody resumed for days
        report = run_job(store, today=today, prune=False, on_line=line)
        targets = [r for r in app.config.remotes if r.auto_push]
        mirror = mirror_and_prune(
            store,
            targets,
            should_stop=should_stop,
            today=today,
            on_line=line,
            on_report=remote_done,
        )
        aged = compress_due(store, today)  # after the push: a new version leaves as it is
    for text in aged.lines:
        line(text)
    for d in mirror.local_decisions:
        if not d.keep:
            line(f"local: deleted {d.name}: {'; '.join(d.reasons)}")
    # a file refused for every remote is one problem, said once
    problems = list(
        dict.fromkeys(
            [
                *report.problems,
                *aged.problems,
                *mirror.problems,
                *(p for r in mirror.reports for p in r.problems),
            ]
        )
    )
    data = report.to_dict()
    data["prune"] = mirror.to_dict()["local_prune"]
    data["remotes"] = [r.to_dict() for r in mirror.reports]
    data["problems"] = problems
    data["warnings"] = mirror.warnings
    data["compressed"] = aged.lines
    return (EXIT_PROBLEMS if problems else 0), data, lines


def _parse_day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.command()
@json_option
@click.option("--today", hidden=True, metavar="YYYY-MM-DD", help="Act as if today were this date.")
@pass_app
def run(app, as_json: bool, today: str | None) -> int:  # type: ignore[no-untyped-def]
    """The periodic job: make a dated version when one is due and the model changed, push to
    every auto_push remote, then apply retention on each side."""
    # lines go out as they happen: a long push shows its progress file by file
    code, data, _ = periodic_job(app, today=_parse_day(today), emit=None if as_json else app.out)
    if as_json:
        app.out_json(data)
    else:
        for problem in [*data["problems"], *data["warnings"]]:
            app.warn(problem)
    return code


@click.command()
@click.option("--at", "at", metavar="HH:MM", help="Run once a day at this local time.")
@click.option("--every", "every", type=float, metavar="HOURS", help="Run every HOURS hours.")
@click.option("--now", "run_now", is_flag=True, help="Also run once right away.")
@pass_app
def daemon(app, at: str | None, every: float | None, run_now: bool) -> int:  # type: ignore[no-untyped-def]
    """Run the periodic job until stopped (default: daily at 02:00). SIGTERM finishes the
    transfer in flight and exits cleanly; a second SIGTERM stops at once (uploads resume)."""
    from agent.cli.daemon import Daemon

    if at and every:
        raise click.UsageError("give either --at or --every, not both")
    when = None
    if every is None:
        try:
            when = dt.time.fromisoformat(at or "02:00")
        except ValueError:
            raise click.BadParameter(f"{at!r} is not a time (HH:MM)", param_hint="--at") from None
    elif every <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--every")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    log = logging.getLogger("agent.cli.daemon")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    app.config  # noqa: B018 - a bad config fails now, not at 2 am

    def job(should_stop) -> int:  # type: ignore[no-untyped-def]
        from agent.errors import LockHeld

        app.__dict__.pop("store", None)  # each run sees the files as they are now
        try:
            # each line is logged, and so stamped, when it happens, not when the run ends
            code, _, _ = periodic_job(
                app, should_stop=should_stop, emit=lambda t: log.info("%s", t)
            )
        except LockHeld as exc:
            log.warning("skipped: %s", exc)
            return exc.exit_code
        return code

    interval = dt.timedelta(hours=every) if every is not None else None
    return Daemon(job, at=when, every=interval, run_now=run_now).serve()


COMMANDS = [run, daemon]
