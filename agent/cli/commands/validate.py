"""``model-safety validate [MODEL|PATH]``: the ordered checks of agent.validation.validate,
one line each.

Exit 0 when every model passed, 3 when a check failed, 1 when the checks could not run."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.commands import json_option, pass_app
from agent.errors import EXIT_PROBLEMS


def _targets(app, target: str | None) -> list[tuple[str | None, Path | None]]:  # type: ignore[no-untyped-def]
    """(model, path) pairs: every configured model, one model, a catalog copy, or a path."""
    models = [m.name for m in app.config.models]
    if target is None:
        return [(name, None) for name in models]
    if target in models:
        return [(target, None)]
    path = Path(target)
    if not path.exists() and app.store.catalog.get(target) is not None:
        path = app.store.path(target)  # a copy named as `list` shows it
    if not path.exists():
        app.config.model(target)  # raises "unknown model" with the nearest name
    return [(None, path)]


@click.command()
@click.argument("target", required=False, metavar="[MODEL|PATH]")
@click.option(
    "--reference",
    metavar="NAME|PATH",
    help="Compare with this copy instead of the previous good version.",
)
@json_option
@pass_app
def validate(app, target: str | None, reference: str | None, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    """Check that a checkpoint loads safely, keeps its structure, has finite values and scores
    well enough. Without an argument, every configured model's current file."""
    from agent.validation.validate import validate_model

    results = [
        validate_model(app.store, model, path, reference=reference)
        for model, path in _targets(app, target)
    ]
    passed = all(r.passed for r in results)
    if as_json:
        app.out_json({"passed": passed, "results": [r.to_dict() for r in results]})
    else:
        for r in results:
            against = f", compared with {r.reference}" if r.reference else ""
            app.out(f"{r.model or Path(r.path).name} ({r.path}{against})")
            for c in r.checks:
                app.out(f"  {c.status:4}  {c.name:12}  {c.detail}")
            app.out(r.summary())
    return 0 if passed else EXIT_PROBLEMS


COMMANDS = [validate]
