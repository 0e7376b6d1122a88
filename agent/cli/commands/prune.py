"""``model-safety prune``: apply local retention to dated versions."""

from __future__ import annotations

import contextlib

import click

from agent.cli.commands import json_option, model_argument, pass_app
from agent.cli.commands.table import print_decisions
from agent.errors import AgentError
from agent.rules.retention import Decision


@click.command()
@model_argument
@click.option("--dry-run", is_flag=True, help="Only print what would be kept and deleted, and why.")
@click.option("--remote", "remote_name", metavar="NAME", help="Apply this remote's retention.")
@click.option("--force", is_flag=True, help="Also delete local versions no remote holds yet.")
@click.option(
    "--replaced-older-than",
    "replaced_days",
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Also delete set-aside <stem>_replaced-<time> files older than DAYS days "
    "(never the newest of each file).",
)
@json_option
@pass_app
def prune(app, model, dry_run, remote_name, force, replaced_days, as_json) -> int:  # type: ignore[no-untyped-def]
    """Apply local retention to dated versions (max_backups and the config's retention: rules,
    such as keep_within_days); never fewer than 2, never the newest good one.

    When remotes are configured, a local version that no remote holds yet is kept (and says
    so) unless --force. With --remote NAME, apply that remote's own retention instead.
    With --replaced-older-than DAYS, also delete the files a restore or a rejected guard set
    aside more than DAYS days ago, keeping the newest set-aside copy of each file."""
    from agent.local.prune import prune_local

    if remote_name:
        if replaced_days is not None:
            raise click.UsageError("--replaced-older-than applies to models_dir, not to --remote")
        from agent.cli.commands.remote_views import prune_remote_cmd

        return prune_remote_cmd(app, remote_name, dry_run, as_json)
    from agent.local.prune import prune_set_aside

    guard = contextlib.nullcontext() if dry_run else app.lock("prune")
    aside: list[Decision] = []
    with guard:
        pins = {} if force else unmirrored(app)
        decisions = prune_local(app.store, model, dry_run=dry_run, pins=pins)
        if replaced_days is not None:
            aside = prune_set_aside(app.store, model, replaced_days, dry_run=dry_run)
    if as_json:
        report = {"dry_run": dry_run, "decisions": [d.to_dict() for d in decisions]}
        if replaced_days is not None:
            report["set_aside"] = [d.to_dict() for d in aside]
        app.out_json(report)
    else:
        print_decisions(app, decisions, dry_run)
        if replaced_days is not None:
            print_decisions(app, aside, dry_run, nothing="no set-aside files")
    return 0


def unmirrored(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Pins for local versions that no configured remote holds yet (none without remotes)."""
    if not app.config.remotes:
        return {}
    from agent.remote.connect import Remote
    from agent.remote.prune import unmirrored_pins

    remotes = []
    try:
        for rc in app.config.remotes:
            try:
                remotes.append(Remote.open(app.store, rc))
            except AgentError as exc:  # unreachable remote: its copies count as absent
                app.warn(f"remote {rc.name}: {exc}")
        return unmirrored_pins(app.store, remotes)
    finally:
        for r in remotes:
            r.close()


COMMANDS = [prune]
