"""One small module per command group; each defines ``COMMANDS`` (see agent/cli/main.py)."""

from __future__ import annotations

import click

from agent.cli.app import App
from agent.progress import human_size

__all__ = ["human_size", "json_option", "model_argument", "pass_app"]

pass_app = click.make_pass_decorator(App)

model_argument = click.argument("model", required=False, metavar="[MODEL]")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
