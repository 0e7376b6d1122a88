"""``model-safety diff A B``: what changed between two checkpoints, tensor by tensor."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.commands import json_option, pass_app
from agent.errors import AgentError, CheckFailed
from agent.rules.naming import backup_name


def resolve_checkpoint(app, spec: str, model: str | None) -> Path:  # type: ignore[no-untyped-def]
    """``current``/``backup`` of a model, a catalog copy's name, or a path."""
    if spec in ("current", "backup"):
        m = app.config.model(model)
        return app.store.path(m.file if spec == "current" else backup_name(m.file, m.directory))
    path = Path(spec)
    if path.exists():
        return path
    if app.store.catalog.get(spec) is not None or app.store.path(spec).exists():
        return app.store.path(spec)
    raise AgentError(f"{spec}: no such file, catalog copy, `current` or `backup`")


@click.command()
@click.argument("a")
@click.argument("b")
@click.option("--model", metavar="MODEL", help="The model `current` and `backup` refer to.")
@click.option("--all", "show_all", is_flag=True, help="Also list the unchanged tensors.")
@json_option
@pass_app
def diff(app, a: str, b: str, model: str | None, show_all: bool, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    """Compare checkpoint A with B tensor by tensor: added, removed, reshaped, unchanged, and the
    relative change ||B-A|| / ||A|| of each changed tensor, largest first.

    A and B: version names (as `list` shows them), `current` or `backup`, or file paths."""
    from agent.checkpoint.diff import diff_checkpoints
    from agent.checkpoint.reader import CheckpointError

    path_a, path_b = resolve_checkpoint(app, a, model), resolve_checkpoint(app, b, model)
    for p in (path_a, path_b):
        if not p.exists():
            raise AgentError(f"{p} does not exist")
    from agent.checks.directory import as_verdict
    from agent.checks.verdicts import verdict_of_path

    for p in (path_a, path_b):
        # only what torch's confined loader accepted is opened in this process
        verdict = as_verdict(app.store, p) if p.is_dir() else verdict_of_path(app.store, p)
        if not verdict.ok and verdict.failed_check != "finite":
            raise CheckFailed(f"cannot compare: {p.name} fails the check: {verdict.reason}")
    from contextlib import ExitStack

    from agent.local.stored import plain_path

    try:
        with ExitStack() as stack:  # a compressed copy is compared by its model bytes
            plain_a, plain_b = (
                stack.enter_context(plain_path(app.store, p)) for p in (path_a, path_b)
            )
            changes = diff_checkpoints(plain_a, plain_b)
    except CheckpointError as exc:
        raise AgentError(f"cannot compare {path_a.name} and {path_b.name}: {exc}") from None
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.status] = counts.get(c.status, 0) + 1
    if as_json:
        app.out_json(
            {
                "a": str(path_a),
                "b": str(path_b),
                "counts": counts,
                "tensors": [c.to_dict() for c in changes],
            }
        )
        return 0
    rows = [("tensor", "status", "change", "before -> after")]
    for c in changes:
        if c.status == "unchanged" and not show_all:
            continue
        rel = "" if c.relative_change is None else f"{c.relative_change:.4g}"
        rows.append((c.name, c.status, rel, _shapes(c)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        app.out("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip())
    app.out(", ".join(f"{n} {status}" for status, n in counts.items()) or "no tensors")
    return 0


def _shapes(c) -> str:  # type: ignore[no-untyped-def]
    def fmt(sig) -> str:  # type: ignore[no-untyped-def]
        return "-" if sig is None else f"{sig[0]}{list(sig[1])}"

    if c.before == c.after:
        return fmt(c.before)
    return f"{fmt(c.before)} -> {fmt(c.after)}"


COMMANDS = [diff]
