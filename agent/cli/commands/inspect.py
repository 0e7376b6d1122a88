"""``list``, ``verify`` and ``status``: read-only views of the models dir."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.commands import human_size, json_option, model_argument, pass_app
from agent.cli.commands.table import (
    DATE,
    KIND,
    NAME,
    NOTE,
    SHA256,
    SHA_PREFIX,
    SIZE,
    STATE,
    render,
)
from agent.errors import EXIT_PROBLEMS

if TYPE_CHECKING:
    from agent.local.store import CopyState


def _validation(records: dict[str, dict[str, Any]], sha256: str | None) -> dict[str, Any] | None:
    """What `validate` recorded for this content: passed and score, or None when never run."""
    rec = records.get(sha256 or "")
    if not rec or "passed" not in rec:
        return None
    return {"passed": rec.get("passed"), "score": rec.get("score"), "when": rec.get("when")}


def _score_cell(val: dict[str, Any] | None) -> str:
    if val is None:
        return ""
    score = f" {val['score']:.3g}" if isinstance(val.get("score"), int | float) else ""
    return ("passed" if val["passed"] else "FAILED") + score


def _mtime(path: Path) -> str:
    """When the current file last changed, as the DATE of a copy without one (UTC, like the
    creation times of copies)."""
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M")
    except OSError:
        return ""


def _state_dict(s: CopyState, records: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    e = s.entry
    return {
        "name": e.name,
        "kind": e.kind,
        "date": e.date.isoformat() if e.date else None,
        "seq": e.seq,
        "created": e.created.isoformat(timespec="seconds"),
        "size": e.size,
        "sha256": e.sha256,
        "state": s.state,
        "problems": list(s.problems),
        "note": e.note,
        "source": e.source,
        "companions": dict(e.companions),
        "validation": _validation(records or {}, e.sha256),
        # how it is stored: "zstd" with the .zst file's own size and sha256, or null (as is)
        "codec": e.codec,
        "stored_size": e.disk_size,
        "stored_sha256": e.stored_sha256 or e.sha256,
    }


remote_option = click.option(
    "--remote", "remote_name", metavar="NAME", help="Look at this remote instead of models_dir."
)


@click.command(name="list")
@model_argument
@remote_option
@json_option
@pass_app
def list_(app, model: str | None, remote_name: str | None, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    """Show the current file, the backup slot and the versions, with their state."""
    from agent.local.tree import tree_size

    if remote_name:
        from agent.cli.commands.remote_views import list_remote

        return list_remote(app, remote_name, model, as_json)
    store = app.store
    m = app.config.model(model)
    current = store.path(m.file)
    cur: dict[str, Any] = {"name": m.file, "kind": "current", "state": "missing"}
    if current.is_file() or (m.directory and current.is_dir()):
        size = tree_size(current) if current.is_dir() else current.stat().st_size
        cur.update(size=size, sha256=store.sha256(current), state="present")
    states = store.versions(m.name)
    from agent.checks.records import load_records

    records = load_records(store.state_dir)
    cur["validation"] = _validation(records, cur.get("sha256"))
    if as_json:
        copies = [_state_dict(s, records) for s in states]
        app.out_json({"model": m.name, "current": cur, "copies": copies})
        return 0
    rows = [
        (
            cur["name"],
            "current",
            _mtime(current),
            human_size(cur.get("size", 0)),
            str(cur.get("sha256", ""))[:SHA_PREFIX],
            cur["state"],
            _score_cell(cur["validation"]),
            "",
        )
    ]
    for s in states:
        e = s.entry
        when = e.date.isoformat() if e.date else e.created.strftime("%Y-%m-%d %H:%M")
        val = _score_cell(_validation(records, e.sha256))
        rows.append(
            (
                e.name,
                e.kind,
                when,
                human_size(e.size),
                e.sha256[:SHA_PREFIX],
                s.state,
                val,
                e.note or "",
            )
        )
    header = (NAME, KIND, DATE, SIZE, SHA256, STATE, "VALIDATION", NOTE)
    for line in render(header, rows):
        app.out(line)
    for s in states:
        for p in s.problems:
            app.warn(p)
    return 0


@click.command()
@model_argument
@remote_option
@click.option("--deep", is_flag=True, help="With --remote: read every object back and re-hash it.")
@json_option
@pass_app
def verify(app, model: str | None, remote_name: str | None, deep: bool, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    """Re-read every copy and compare its sha256 with the catalog. Exit 3 on any problem.

    With --remote, compare every remote copy with the remote catalog by size and the strongest
    checksum the remote holds, without a download (--deep reads the bytes back)."""
    if remote_name:
        from agent.cli.commands.remote_views import verify_remote_cmd

        return verify_remote_cmd(app, remote_name, deep, as_json)
    if deep:
        raise click.UsageError("--deep needs --remote NAME (local verify always reads every byte)")
    states = app.store.verify(model)
    bad = [s for s in states if s.state != "ok"]
    damaged = app.store.catalog.damaged
    currents = _current_states(app, model, states)
    bad_current = [c for c in currents if c["state"] != "ok"]
    if as_json:
        from agent.checks.records import load_records

        records = load_records(app.store.state_dir)
        app.out_json(
            {
                "ok": not bad and not damaged and not bad_current,
                "catalog_damaged": damaged,
                "current": currents,
                "copies": [_state_dict(s, records) for s in states],
            }
        )
    else:
        for s in states:
            app.out(f"{s.state:9}  {s.entry.name}")
            for p in s.problems:
                if not p.startswith(s.entry.name + ":"):
                    app.out(f"           {p}")
        if damaged:
            app.out(f"{'damaged':9}  {damaged}")
        for c in currents:
            app.out(f"{c['state']:9}  {c['name']} (current)")
            if c.get("problem"):
                app.out(f"           {c['problem']}")
        app.out(
            f"{len(states)} copies and {len(currents)} current file(s) checked, "
            f"{len(bad) + len(bad_current)} with problems"
        )
    return EXIT_PROBLEMS if bad or damaged or bad_current else 0


def _current_states(app, model: str | None, states: list[CopyState]) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The current files have no recorded hash (they change on purpose), but their structure
    can be checked without loading them: the zip directory and records, or the safetensors
    header (agent.checks.pregate), plus any verdict already recorded for their content."""
    from agent.checks.pregate import Refused, inspect
    from agent.checks.shards import missing_parts
    from agent.checks.verdicts import recorded

    out = []
    models = [app.config.model(model)] if model else list(app.config.models)
    for m in models:
        path = app.store.path(m.file)
        if not (path.is_dir() if m.directory else path.is_file()):
            if any(s.entry.model == m.name for s in states):  # it had copies: lost, not new
                fix = _fix(app, m.name, states)
                out.append({"name": m.file, "state": "missing", "problem": "not there" + fix})
            elif not path.exists():
                app.warn(
                    f"{m.name}: no current file and no local copies (a new model, or lost "
                    "with its disk: `model-safety pull` brings it back from a remote)"
                )
            continue
        problem = None
        try:
            problem = missing_parts(path) if m.directory else inspect(path) and None
        except Refused as exc:
            problem = str(exc)
        if problem is None:
            verdict = recorded(app.store, app.store.sha256(path))
            if verdict is not None and not verdict.ok:
                problem = f"fails the check: {verdict.reason}"
        row: dict[str, Any] = {"name": m.file, "state": "ok" if problem is None else "damaged"}
        if problem:
            row["problem"] = problem + _fix(app, m.name, states)
        out.append(row)
    app.store.save()
    return out


def _fix(app, model: str, states: list[CopyState]) -> str:  # type: ignore[no-untyped-def]
    """What brings a damaged or missing current file back: the newest intact local copy, else
    the remotes."""
    good = next(
        (
            s.entry.name
            for s in states
            if s.state == "ok"
            and s.entry.model == model
            and s.entry.kind in ("version", "backup")
            and s.entry.companion is None
        ),
        None,
    )
    if good:
        return f"; the newest intact copy is {good}: `model-safety restore {model} --yes`"
    if app.config.remotes:
        return "; no intact local copy: `model-safety pull --all`"
    return "; no intact copy here and no remote configured"


@click.command()
@model_argument
@click.option("--local", "local_only", is_flag=True, help="Skip the remotes (no network).")
@json_option
@pass_app
def status(app, model: str | None, local_only: bool, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    """Storage used, free disk, what the next version needs and when it is due, warnings;
    per remote: versions there, when last verified, what a push would send."""
    from agent.local.schedule import status_report

    report = status_report(app.store, model)
    remotes = []
    if not local_only and app.config.remotes:
        from agent.cli.commands.remote_views import print_remote_status, remote_status

        remotes = remote_status(app)
        report["remotes"] = remotes
        from agent.cli.commands.storage_view import per_model_remotes

        per_model_remotes(report, remotes)
    if as_json:
        app.out_json(report)
        return 0
    app.out(f"models dir  {report['models_dir']}")
    for m in report["models"]:
        app.out(f"{m['name']}:")
        current = human_size(m["current_bytes"]) if m["current_present"] else "missing"
        app.out(f"  current           {current}")
        app.out(f"  backup slot       {human_size(m['backup_bytes'])}")
        app.out(
            f"  versions          {m['versions']} ({human_size(m['versions_bytes'])}), "
            f"newest {m['newest_version'] or '-'}"
        )
        if m["set_aside"]:
            app.out(
                f"  set aside         {m['set_aside']} file(s), {human_size(m['set_aside_bytes'])} "
                "(replaced by a restore or a rejected guard; "
                "`prune --replaced-older-than DAYS` removes old ones)"
            )
        app.out(
            f"  next version due  {m['next_version_due']}, "
            f"needs {human_size(m['next_version_needs_bytes'])}"
        )
        from agent.cli.commands.storage_view import print_storage

        print_storage(app, m["storage"])
    app.out(
        f"total {human_size(report['total_bytes'])}, free {human_size(report['free_bytes'])} "
        f"(keeping {human_size(report['min_free_bytes'])} free), "
        f"retention {report['retention']}"
    )
    if remotes:
        print_remote_status(app, remotes)
    for w in report["warnings"]:
        app.warn(w)
    return 0


COMMANDS = [list_, verify, status]
