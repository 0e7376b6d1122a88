"""The remote side of ``list``, ``verify``, ``status`` and ``prune`` (``--remote NAME``)."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from agent.cli.commands import human_size
from agent.cli.commands.remote import opened
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


def _row(check, obj) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    rec = (obj.recorded if obj else None) or {}
    ident = obj.ident if obj else None
    return {
        "name": check.name,
        "kind": ident.kind if ident else rec.get("kind"),
        "date": ident.date.isoformat() if ident and ident.date else rec.get("date"),
        "size": obj.info.size if obj else rec.get("size"),
        "sha256": rec.get("sha256") or (obj.info.hashes.get("sha256") if obj else None),
        "state": check.state,
        "detail": check.detail,
        "verified_at": check.verified_at,
        "note": rec.get("note"),
        "created": rec.get("created"),
    }


def _date_cell(row: dict[str, Any]) -> str:
    """The version's date, else when the copy was made: the same DATE as the local listing."""
    if row["date"]:
        return str(row["date"])
    try:
        return dt.datetime.fromisoformat(str(row["created"])).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def _newest_first(app, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The order of the local ``list``: per model, the current file first, then copies newest
    first by (date, same-day number, creation time), a version's model file before its
    companions."""
    from agent.rules.naming import identify, listing_key

    idents = {r["name"]: identify(r["name"], app.config.models) for r in rows}

    def newest(row: dict[str, Any]) -> tuple:
        ident = idents[row["name"]]
        created = None
        with contextlib.suppress(TypeError, ValueError):
            created = dt.datetime.fromisoformat(str(row.get("created")))
        day, seq, when = listing_key(
            ident.date if ident else None, ident.seq if ident else 1, created
        )
        model_file = bool(ident and ident.companion is None)
        return (bool(ident and ident.kind == "current"), day, seq, model_file, when)

    rows = sorted(rows, key=newest, reverse=True)
    # stable: each model's rows stay newest first
    return sorted(rows, key=lambda r: idents[r["name"]].model if idents[r["name"]] else "")


def list_remote(app, name: str, model: str | None, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    from agent.remote.push import plan
    from agent.remote.verify import verify_remote
    from agent.rules.push_plan import Action

    models = {app.config.model(model).name} if model else {m.name for m in app.config.models}
    with opened(app, name) as remote:
        report = verify_remote(app.store, remote, record=False)
        rows = _newest_first(
            app,
            [
                _row(c, remote.objects.get(c.name))
                for c in report.checks
                if c.name not in remote.objects or remote.objects[c.name].ident.model in models
            ],
        )
        steps, _ = plan(app.store, remote, deltas=False)
        from agent.remote.tree_verify import tree_rows, verify_trees
        from agent.remote.trees import trees_to_push

        rows += tree_rows(app.store, remote, verify_trees(app.store, remote), models)
        dirs = trees_to_push(app.store, remote)
    pending = [s for s in steps if s.action in (Action.UPLOAD, Action.COPY)]
    if as_json:
        app.out_json(
            {
                "remote": name,
                "files": rows,
                "would_push": [
                    {"name": s.name, "action": s.action.value, "size": s.size} for s in pending
                ]
                + [{"name": n, "action": "directory", "size": size} for n, size in dirs],
                "skipped": list(remote.skipped),
            }
        )
        return 0
    table = [
        (
            r["name"],
            str(r["kind"] or ""),
            _date_cell(r),
            human_size(r["size"] or 0),
            str(r["sha256"] or "")[:SHA_PREFIX],
            r["state"],
            str(r["verified_at"] or "never")[:19],
            r["note"] or "",
        )
        for r in rows
    ]
    header = (NAME, KIND, DATE, SIZE, SHA256, STATE, "VERIFIED", NOTE)
    for line in render(header, table):
        app.out(line)
    if pending:
        total = sum(s.size for s in pending)
        app.out(f"a push would send {len(pending)} file(s), {human_size(total)}")
    if dirs:
        total = sum(size for _, size in dirs)
        names = ", ".join(n for n, _ in dirs)
        app.out(
            f"a push would send {len(dirs)} directory copies ({names}), up to {human_size(total)}"
        )
    return 0


def verify_remote_cmd(app, name: str, deep: bool, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    from agent.remote.verify import verify_remote

    with opened(app, name) as remote:
        report = verify_remote(app.store, remote, deep=deep)
        from agent.remote.tree_verify import verify_trees

        report.checks.extend(verify_trees(app.store, remote, deep=deep))
    if as_json:
        app.out_json(report.to_dict())
    else:
        for c in report.checks:
            app.out(f"{c.state:10}  {c.name}: {c.detail}")
        app.out(
            f"{name}: {len(report.checks)} copies checked"
            + (" (read back in full)" if deep else "")
            + f", {len(report.problems)} with problems"
        )
        for c in report.problems:
            app.warn(f"{name}: {c.name} is {c.state}: {c.detail}")
    return EXIT_PROBLEMS if report.problems else 0


def prune_remote_cmd(app, name: str, dry_run: bool, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    import contextlib

    from agent.cli.commands.table import print_decisions
    from agent.remote.prune import prune_remote

    with contextlib.nullcontext() if dry_run else app.lock("prune"), opened(app, name) as remote:
        decisions = prune_remote(app.store, remote, dry_run=dry_run)
    if as_json:
        app.out_json(
            {
                "remote": name,
                "dry_run": dry_run,
                "decisions": [d.to_dict() for d in decisions],
            }
        )
    else:
        print_decisions(app, decisions, dry_run)
    return 0


def remote_status(app) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Per remote: versions there, when last verified, and what a push would send. A remote that
    cannot be reached is reported, not fatal."""
    from agent.errors import AgentError
    from agent.remote.push import plan
    from agent.remote.trees import trees_to_push
    from agent.rules.push_plan import Action

    out = []
    for rc in app.config.remotes:
        entry: dict[str, Any] = {"remote": rc.name, "type": rc.settings.get("type")}
        if rc.settings.get("type") == "s3":
            # what every put, multipart create and copy asks the server for (providers/s3.py)
            sse = rc.settings.get("sse")
            kms = rc.settings.get("sse_kms_key_id")
            entry["encryption"] = f"{sse} (key {kms})" if sse and kms else (sse or "none")
        try:
            with opened(app, rc.name) as remote:
                objects = remote.objects
                steps, _ = plan(app.store, remote, deltas=False)
                dirs = trees_to_push(app.store, remote)
                verified = [
                    str(e.get("verified_at"))
                    for e in remote.catalog.files.values()
                    if e.get("verified_at")
                ]
                from agent.remote.storage import remote_side

                per_model = remote_side(
                    remote, [s for s in steps if s.action in (Action.UPLOAD, Action.COPY)], dirs
                )
        except AgentError as exc:
            entry["error"] = str(exc)
            out.append(entry)
            continue
        pending = [s for s in steps if s.action in (Action.UPLOAD, Action.COPY)]
        trees = list(remote.catalog.trees.values())
        entry.update(
            versions=sorted(
                [
                    n
                    for n, o in objects.items()
                    if o.ident.kind == "version" and not o.ident.companion
                ]
                + [t["name"] + "/" for t in trees if t.get("kind") == "version"]
            ),
            files=len(objects) + sum(len(t.get("files") or {}) for t in trees),
            bytes=sum(o.info.size for o in objects.values()) + sum(t.get("size", 0) for t in trees),
            last_verified=max(verified) if verified else None,
            would_push=[s.name for s in pending] + [n for n, _ in dirs],
            would_push_bytes=sum(s.size for s in pending) + sum(size for _, size in dirs),
            refused=[f"{s.name}: {s.reason}" for s in steps if s.action is Action.REFUSE],
            auto_push=rc.auto_push,
            retention=rc.retention.describe(),
            models=per_model,  # moved into each model's storage by `status`
        )
        out.append(entry)
    return out


def print_remote_status(app, remotes: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    for r in remotes:
        if "error" in r:
            app.out(f"remote {r['remote']} ({r['type']}): unreachable")
            app.warn(r["error"])
            continue
        app.out(
            f"remote {r['remote']} ({r['type']}): {len(r['versions'])} version(s), "
            f"{r['files']} file(s), {human_size(r['bytes'])}; "
            f"last verified {r['last_verified'] or 'never'}; retention {r['retention']}"
            + (f"; encryption: {r['encryption']}" if "encryption" in r else "")
        )
        if r["would_push"]:
            app.out(
                f"  a push would send {len(r['would_push'])} file(s), "
                f"{human_size(r['would_push_bytes'])}: {', '.join(r['would_push'][:6])}"
                + (" ..." if len(r["would_push"]) > 6 else "")
            )
        else:
            app.out("  up to date")
        for line in r["refused"]:
            app.warn(f"{r['remote']}: {line}")
