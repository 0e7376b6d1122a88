"""``model-safety guard [MODEL] -- COMMAND ...``: an update cannot silently make things worse."""

from __future__ import annotations

import sys

import click

from agent.cli.commands import json_option, model_argument, pass_app


class _SplitAtDoubleDash(click.Command):
    """Everything after ``--`` is the update command, untouched; click would otherwise mix it
    into MODEL and parse its options as ours."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta["guard_command"] = args[at + 1 :]
            args = args[:at]
        else:
            ctx.meta["guard_command"] = []
        return super().parse_args(ctx, args)


@click.command(cls=_SplitAtDoubleDash)
@model_argument
@click.option(
    "--version",
    "make_version",
    is_flag=True,
    help="After a passing update, also keep it as a dated version (<stem>_vYYYY-MM-DD).",
)
@click.option(
    "--discard-failed",
    is_flag=True,
    help="Delete a rejected model instead of keeping it aside as <stem>_replaced-<time>.",
)
@json_option
@pass_app
@click.pass_context
def guard(ctx, app, model, make_version, discard_failed, as_json) -> int:  # type: ignore[no-untyped-def]
    """Back up MODEL, run the update command given after --, validate the result, and roll back
    if the update failed or made the model worse.

    \b
    Example:  model-safety guard dinesh_ai_model --version -- python finetune.py --epochs 1

    The command's output is streamed (to stderr with --json). It learns the model's path from
    $MODEL_SAFETY_MODEL_PATH. Exit 0: accepted or unchanged; 3: rejected and rolled back (or the
    command failed); 1: the result could not be validated (rolled back, kept aside);
    130: interrupted (the model is untouched or restored)."""
    from agent.guard.run import run_guarded
    from agent.guard.update import Guard

    argv = ctx.meta["guard_command"]
    if not argv:
        raise click.UsageError("give the update command after --, e.g. -- python train.py")
    m = app.config.model(model)
    with app.lock(f"guard {m.name}"):
        g = Guard(app.store, m.name, version=make_version, discard_failed=discard_failed)
        result = run_guarded(g, argv, stdout=sys.stderr if as_json else None)
    if as_json:
        app.out_json(result.to_dict())
        return result.exit_code
    for warning in result.warnings:
        app.warn(warning)
    if result.validation is not None:
        for check in result.validation.checks:
            app.out(f"  {check.status:4}  {check.name}: {check.detail}")
    if result.exit_code == 0:
        app.out(result.message)
    else:
        click.echo(f"{m.name}: {result.message}", err=True)
    return result.exit_code


COMMANDS = [guard]
