"""Every message that recommends a command names a command and options that exist.

The advice is collected from the agent's source: each string (f-strings with their placeholders)
that says ``model-safety CMD ... --opt``, and each bare ``use --opt`` / ``without --opt`` in a
message, checked against the options of the real click commands."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

from agent.cli.main import cli

AGENT = Path(__file__).resolve().parents[2] / "agent"
# "model-safety CMD rest": the rest ends at a backtick, a quote, a line end or `;`
FULL = re.compile(r"(`?)model-safety ((?:--config \S+ |-v+ )*)([a-z][a-z-]*)([^`'\"\n;]*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
BARE = re.compile(
    r"\b(?:use|either|without|with|give|pass|add|try)\s+"
    r"(--[a-z][a-z-]*(?:(?:,| or| and)\s+--[a-z-]+)*)"
)
# modules outside agent/commands whose bare advice is shown by these commands
BARE_ADVICE_COMMANDS = {"restore.py": ["restore"], "pull.py": ["pull"]}


def strings(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module, f-strings flattened with ``{}`` for each placeholder."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if id(node) in parts:
            continue  # a piece of an f-string, seen whole below
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            found.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def command_name(func: ast.FunctionDef) -> str | None:
    """The click name of a command function, or None for a helper."""
    if not any("command" in ast.unparse(d) for d in func.decorator_list):
        return None
    return func.name.rstrip("_").replace("_", "-")


def bare_targets(path: Path) -> dict[int, list[str]]:
    """For an agent/commands module: line -> the commands a message on that line is shown by
    (the enclosing command, or every command of the module for a shared helper)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    every = [c for c in map(command_name, funcs) if c]
    targets: dict[int, list[str]] = {}
    for func in funcs:
        name = command_name(func)
        for line in range(func.lineno, (func.end_lineno or func.lineno) + 1):
            targets[line] = [name] if name else every
    return targets


def advice() -> list[tuple[str, str, list[str], str]]:
    """(where, command, options, the advice) for every piece of advice in agent/."""
    found = []
    for path in sorted(AGENT.rglob("*.py")):
        rel = path.relative_to(AGENT.parent)
        for line, text in strings(path):
            where = f"{rel}:{line}"
            for tick, _globals, cmd, rest in FULL.findall(text):
                rest = rest.split(" -- ")[0]  # guard's own command follows `--`
                if cmd in cli.commands or tick:
                    found.append((where, cmd, OPTION.findall(rest), f"model-safety {cmd}{rest}"))
            bare = [o for group in BARE.findall(FULL.sub("", text)) for o in OPTION.findall(group)]
            if bare:
                if path.parent.name == "commands":
                    targets = bare_targets(path).get(line) or [f"<no command at {where}>"]
                else:
                    targets = BARE_ADVICE_COMMANDS.get(path.name, [f"<map {rel} in the test>"])
                for cmd in targets:
                    found.append((where, cmd, bare, text))
    return found


ADVICE = advice()


def test_advice_was_found():
    """The collector sees the advice it is meant to check (a broken regex would pass vacuously)."""
    cmds = {(cmd, tuple(opts)) for _, cmd, opts, _ in ADVICE}
    assert ("list", ("--remote",)) in cmds
    assert ("pull", ("--remote", "--all")) in cmds
    assert ("init", ("--force",)) in cmds


@pytest.mark.parametrize(("where", "cmd", "opts", "text"), ADVICE, ids=[a[0] for a in ADVICE])
def test_advice_names_options_that_exist(where, cmd, opts, text):
    assert cmd in cli.commands, f"{where}: {text!r} names no command {cmd!r}"
    missing = [o for o in opts if o not in options(cli.commands[cmd])]
    assert not missing, f"{where}: {text!r}: `model-safety {cmd}` has no {', '.join(missing)}"


def test_advised_options_are_in_the_help(tmp_path):
    """What a user would check: the option shows in `model-safety CMD --help`."""
    from click.testing import CliRunner

    runner = CliRunner()
    for cmd in sorted({cmd for _, cmd, _, _ in ADVICE if cmd in cli.commands}):
        shown = runner.invoke(cli, [cmd, "--help"]).output
        for _, c, opts, _ in ADVICE:
            if c == cmd:
                assert all(o in shown for o in opts), (cmd, opts)
