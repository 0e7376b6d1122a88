"""``push``, ``pull``, ``sync`` and ``repair``: mirror local versions to remotes and back."""

from __future__ import annotations

import contextlib

import click
from click import UsageError

from agent.cli.commands import human_size, json_option, model_argument, pass_app
from agent.errors import EXIT_PROBLEMS, AgentError

remote_option = click.option("--remote", "remote_name", metavar="NAME", help="Remote to use.")
all_option = click.option("--all", "all_remotes", is_flag=True, help="Every configured remote.")


def chosen_remotes(app, remote_name: str | None, all_remotes: bool = False) -> list[str]:  # type: ignore[no-untyped-def]
    names = [r.name for r in app.config.remotes]
    if not names:
        raise AgentError("no remotes configured; add one under `remotes:` in config.yaml")
    if remote_name and all_remotes:
        raise UsageError("give either --remote NAME or --all, not both")
    if remote_name:
        app.config.remote(remote_name)  # a clear error naming the nearest remote
        return [remote_name]
    if all_remotes or len(names) == 1:
        return names
    raise UsageError(f"several remotes are configured ({', '.join(names)}): use --remote or --all")


def opened(app, name: str):  # type: ignore[no-untyped-def]
    """The remote, with provider errors turned into one-line agent errors naming it."""
    from agent.remote.connect import opened_remote

    return opened_remote(app.store, app.config.remote(name))


def _print_sync(app, report, dry_run: bool, said: set[str]) -> None:  # type: ignore[no-untyped-def]
    """``said``: problems already printed for another remote in this run (a file refused by the
    check is refused for every remote: one line says so)."""
    from agent.rules.push_plan import Action

    if dry_run:
        for s in report.steps:
            if s.action in (Action.UPLOAD, Action.COPY):
                delta = ""
                if s.reuse is not None:
                    r = s.reuse
                    delta = (
                        f"; {len(r.ranges)} of {r.ranges_total} ranges copied on the remote from "
                        f"{r.name}, {human_size(s.size - r.bytes_reused)} sent"
                    )
                app.out(
                    f"would {s.action.value:6} {s.name} ({human_size(s.size)}): {s.reason}{delta}"
                )
    for line in report.done:
        app.out(line)
    for d in report.decisions:
        verb = "keep" if d.keep else ("would delete" if dry_run else "deleted")
        app.out(f"{report.remote}: {verb} {d.name}: {'; '.join(d.reasons)}")
    for problem in report.problems:
        if problem not in said:
            app.warn(problem)
            said.add(problem)
    app.out(report.summary())


@click.command()
@remote_option
@all_option
@click.option("--dry-run", is_flag=True, help="Show what would be sent, send nothing.")
@json_option
@pass_app
def push(app, remote_name, all_remotes, dry_run, as_json) -> int:  # type: ignore[no-untyped-def]
    """Upload what a remote lacks: current, backup slot, dated versions and companions.

    Content the remote already holds under another name is copied server-side. Files whose
    checksum no longer matches the catalog are never sent. Nothing is ever deleted remotely."""
    from agent.remote.push import push as do_push

    reports = []
    with contextlib.nullcontext() if dry_run else app.lock("push"):
        app.store.warm_up()  # new content is hashed while the remote is opened
        for name in chosen_remotes(app, remote_name, all_remotes):
            with opened(app, name) as remote:
                reports.append(do_push(app.store, remote, dry_run=dry_run))
    if as_json:
        app.out_json([r.to_dict() for r in reports])
    else:
        said: set[str] = set()
        for r in reports:
            _print_sync(app, r, dry_run, said)
    return EXIT_PROBLEMS if any(r.problems for r in reports) else 0


@click.command()
@model_argument
@remote_option
@click.option(
    "--all",
    "all_remotes",
    is_flag=True,
    help="Try every remote in config order until one holds a good copy.",
)
@click.option(
    "--version",
    "version",
    default="latest",
    show_default=True,
    metavar="latest|backup|YYYY-MM-DD|all|FILENAME",
    help="What to bring back.",
)
@json_option
@pass_app
def pull(app, model, remote_name, all_remotes, version, as_json) -> int:  # type: ignore[no-untyped-def]
    """Bring a model and its companions back from a remote (after a disk failure, say).

    With --all, the configured remotes are tried in order, per model, until one holds a good
    copy of what --version asks for; the output names the remote that served it."""
    from agent.remote.pull import pull as do_pull
    from agent.remote.pull import pull_first

    names = chosen_remotes(app, remote_name, all_remotes)
    with app.lock("pull"):
        if len(names) == 1:
            with opened(app, names[0]) as remote:
                report = do_pull(app.store, remote, model, version)
        else:
            configs = [app.config.remote(n) for n in names]
            report = pull_first(app.store, configs, model, version)
    if as_json:
        app.out_json(report.to_dict())
    else:
        for line in report.done:
            app.out(line)
        for line in report.skipped:
            app.warn(f"skipped {line}")
        for line in report.problems:
            app.warn(line)
        app.out(report.summary())
    return EXIT_PROBLEMS if report.problems else 0


@click.command()
@remote_option
@all_option
@click.option("--force", is_flag=True, help="Let local retention delete unmirrored versions.")
@click.option("--dry-run", is_flag=True, help="Show what would happen, change nothing.")
@json_option
@pass_app
def sync(app, remote_name, all_remotes, force, dry_run, as_json) -> int:  # type: ignore[no-untyped-def]
    """Push, then apply retention on each remote and locally."""
    from agent.remote.overnight import mirror_and_prune

    names = chosen_remotes(app, remote_name, all_remotes or not remote_name)
    targets = [app.config.remote(n) for n in names]
    with contextlib.nullcontext() if dry_run else app.lock("sync"):
        result = mirror_and_prune(app.store, targets, dry_run=dry_run, force=force)
    if as_json:
        app.out_json(result.to_dict())
    else:
        said: set[str] = set()
        for r in result.reports:
            _print_sync(app, r, dry_run, said)
        from agent.cli.commands.table import print_decisions

        print_decisions(app, result.local_decisions, dry_run, side="local: ")
        for problem in [*result.problems, *result.warnings]:
            app.warn(problem)
    return EXIT_PROBLEMS if result.has_problems else 0


@click.command()
@click.option("--remote", "remote_name", metavar="NAME", help="Only this remote (default: all).")
@click.option("--all", "all_remotes", is_flag=True, help="Every configured remote (the default).")
@click.option("--deep", is_flag=True, help="Read every remote object back to find damage.")
@json_option
@pass_app
def repair(app, remote_name, all_remotes, deep, as_json) -> int:  # type: ignore[no-untyped-def]
    """Heal damaged, missing or replaced copies, here and on the remotes, from any intact copy
    of the same content: another local file, the same remote under another name (copied
    server-side), or another configured remote."""
    from agent.remote.heal import RemotePool
    from agent.remote.repair import RepairReport, repair_local
    from agent.remote.repair import repair as do_repair

    if remote_name and all_remotes:
        raise UsageError("give either --remote NAME or --all, not both")
    if remote_name:
        app.config.remote(remote_name)  # a clear error naming the nearest remote
    # by default every configured remote (and with none, this machine alone): the advice
    # "`model-safety repair` heals it" holds whatever the config
    names = [remote_name] if remote_name else [r.name for r in app.config.remotes]
    reports = []
    with app.lock("repair"), RemotePool(app.store, list(app.config.remotes)) as pool:
        # every configured remote is a source of intact content, whichever are being repaired
        for name in names:
            try:
                reports.append(do_repair(app.store, pool.get(name), deep=deep, pool=pool))
            except AgentError as exc:
                if remote_name:
                    raise
                # one remote out of reach does not stop the others from being healed
                reports.append(RepairReport(name, problems=[str(exc)]))
        if not names:
            reports.append(repair_local(app.store, pool))
    if as_json:
        app.out_json([r.to_dict() for r in reports])
    else:
        for r in reports:
            for line in r.done:
                app.out(line)
            for line in r.problems:
                app.warn(line)
            if not r.done and not r.problems:
                app.out(f"{r.remote}: nothing to repair")
    return EXIT_PROBLEMS if any(r.problems for r in reports) else 0


COMMANDS = [push, pull, sync, repair]
