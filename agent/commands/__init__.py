"""One small module per command group; each defines ``COMMANDS`` (see agent/cli.py)."""

from __future__ import annotations

import click

from agent.app import App

pass_app = click.make_pass_decorator(App)

model_argument = click.argument("model", required=False, metavar="[MODEL]")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
