"""Section 3 of bench/peers.py: a no-op sync over 20 pushed versions (model-safety `run`
vs `rclone sync --checksum` and `rclone copy`), bytes re-sent after a kill -9 at 70% of an upload
(model-safety vs each peer), and the local part (backup vs cp+sync, hashing vs sha256sum), each
returned as markdown lines."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import local_backup
from _peer_tools import Peer, find_peers, peer_env
from _s3env import (
    MODEL,
    MODEL_FILE,
    FaultProxy,
    cli,
    make_checkpoint,
    run_child,
    s3_remote,
    settle,
    write_project,
)
from sync_s3 import _not_noop, _quiet, _remote_keys, checked

from agent.local import hashing
from agent.local.backup import backup_model

med = statistics.median


def run_extra(
    server: Any, tmp: Path, peers: list[Peer], env: dict[str, str], reps: int
) -> list[str]:
    out = ["## Section 3: no-op sync, kill -9 and resume, local part", ""]
    parts = (
        ("no-op sync", lambda: noop_sync(server, tmp / "noop", peers, env, reps)),
        ("kill -9 and resume", lambda: kill_resume(server, tmp / "kill", peers)),
        ("local part", lambda: local_part(tmp / "local", reps)),
    )
    for name, part in parts:  # one part failing does not lose the others' figures
        try:
            out += part()
        except (Exception, SystemExit) as exc:
            print(f"FAILED: section 3, {name}: {exc}", flush=True)
            out += [f"- {name}: FAILED ({exc})", ""]
    return out


# -- a no-op sync over 20 versions already on the remote ---------------------------------------
def noop_sync(
    server: Any, root: Path, peers: list[Peer], env: dict[str, str], reps: int, mb: int = 20
) -> list[str]:
    models = write_project(root, s3_remote(server, "noop"), max_backups=25, keep_last=25)
    newest = dt.date(2026, 1, 5)
    make_checkpoint(models / MODEL_FILE, mb, seed=100)
    for k in range(20):
        day = newest - dt.timedelta(weeks=k)
        make_checkpoint(models / f"{MODEL}_v{day.isoformat()}.pth", mb, seed=k)
    report = checked(cli(root, "push", "--json"), "push of 20 versions")[0]
    assert report["files"] == 21, report
    ours, theirs = _remote_keys(server, "noop/"), sorted(p.name for p in models.iterdir())
    today = (newest + dt.timedelta(days=1)).isoformat()  # next version due in 6 days
    t_ms, cpu_ms, problems = [], [], []
    for _ in range(reps):
        settle(0.5)
        child = cli(root, "run", "--today", today, "--json")
        t_ms.append(child.seconds)
        cpu_ms.append(child.cpu_s)
        problems += _not_noop(checked(child, "run"))
    if _remote_keys(server, "noop/") != ours or sorted(p.name for p in models.iterdir()) != theirs:
        problems.append("files changed on a side")
    total = sum(p.stat().st_size for p in models.iterdir() if p.is_file())
    rows = [
        f"### No-op sync: 21 files ({total / 1e6:.0f} MB) already on the remote, median of {reps}",
        "",
        "| command | wall s | CPU s |",
        "|---|---|---|",
        f"| model-safety run (catalog + hash cache) | {med(t_ms):.2f} | {med(cpu_ms):.2f} |",
    ]
    rclone = next((p for p in peers if p.name == "rclone"), None)
    if rclone is None:
        return [*rows, "", "- rclone skipped (not available)", ""]
    exe = rclone.up(Path("x"), "y")[0]
    args = [str(models), f"sw:{server.bucket}/rclone-noop", "--exclude", "/.model-safety/**"]
    first = run_child([exe, "sync", *args], cwd=root, env=env)
    if first.code != 0:
        raise SystemExit(f"rclone sync failed: {first.err}")
    keys = _remote_keys(server, "rclone-noop/")
    for label, argv in (
        ("rclone sync --checksum (md5 of every local file)", [exe, "sync", *args, "--checksum"]),
        ("rclone copy (size + modtime, a HEAD per file)", [exe, "copy", *args]),
    ):
        runs = []
        for _ in range(reps):
            settle(0.5)
            child = run_child(argv, cwd=root, env=env)
            if child.code != 0:
                raise SystemExit(f"{label} failed: {child.err}")
            runs.append(child)
        rows.append(
            f"| {label} | {med(c.seconds for c in runs):.2f} | {med(c.cpu_s for c in runs):.2f} |"
        )
    if _remote_keys(server, "rclone-noop/") != keys:
        problems.append("rclone changed the remote")
    rows += [
        "",
        "- model-safety `run --today` the day after the newest of 20 weekly versions: nothing "
        "made, sent or deleted "
        + (f"(NOT a no-op: {problems})" if problems else "(checked); it reads no model bytes."),
        "",
    ]
    return rows


# -- kill -9 at 70% of an upload, then the same command again -----------------------------------
def kill_resume(server: Any, root: Path, peers: list[Peer], mb: int = 400) -> list[str]:
    src = root / "src" / MODEL_FILE
    make_checkpoint(src, mb, seed=7)
    size = src.stat().st_size
    proxy = FaultProxy(server.endpoint_url)
    proxy._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    proxy.start()
    rows = [
        f"### Kill -9 at 70% of a {size / 1e6:.0f} MB upload, then the same command again "
        "(request body bytes counted by a proxy)",
        "",
        "| tool | killed at | bytes sent by the second run | of the file |",
        "|---|---|---|---|",
    ]
    try:
        via = SimpleNamespace(
            bucket=server.bucket,
            endpoint_url=proxy.url,
            access_key=server.access_key,
            secret_key=server.secret_key,
        )
        env = peer_env(via)
        tools: list[tuple[str, Any]] = [("model-safety", None)]
        tools += [(p.name, p) for p in find_peers(via, {p.name for p in peers}, [])]
        models = write_project(root / "ms", s3_remote(server, "kill-ms", endpoint_url=proxy.url))
        models.mkdir(parents=True)
        os.link(src, models / MODEL_FILE)
        checked(cli(root / "ms", "push", "--dry-run"), "push --dry-run")  # hash it first
        threshold = int(0.7 * size)
        for name, peer in tools:
            if peer is None:
                again = lambda **kw: cli(root / "ms", "push", **kw)  # noqa: E731
            else:
                argv = peer.up(src, f"kill-{name}/{MODEL_FILE}")
                again = lambda argv=argv, **kw: run_child(argv, cwd=root, env=env, **kw)  # noqa: E731
            proxy.clear()
            first = again(kill_when=lambda: proxy.body_bytes >= threshold)
            _quiet(proxy)
            killed = proxy.body_bytes / size
            proxy.clear()
            second = again()
            if second.code != 0:
                rows.append(f"| {name} | {killed:.0%} | failed: {second.err.strip()[-200:]} | |")
                continue
            resent = proxy.body_bytes
            note = "" if first.killed_at else " (finished before the kill)"
            rows.append(
                f"| {name} | {killed:.0%}{note} | {resent / 1e6:.0f} MB | {resent / size:.0%} |"
            )
    finally:
        proxy.stop()
    rows += [
        "",
        "- model-safety resumes its multipart upload from its journal (parts the server lists "
        "with the ETag recorded, or with the md5 of our bytes as ETag: the ones in flight at "
        "the kill); the peers start the upload again from byte 0.",
        "",
    ]
    return rows


# -- local: backup vs cp+sync, hashing vs sha256sum (bench/local_backup.py's functions) ----------
def local_part(directory: Path, reps: int, mb: int = 400) -> list[str]:
    models = directory / "models"
    models.mkdir(parents=True)
    src = models / local_backup.MODEL
    make_checkpoint(src, mb)
    size = src.stat().st_size
    local_backup.sha256_pass(src)  # into the page cache for everyone
    dst = directory / "cp_copy.pth"
    times: dict[str, list[float]] = {k: [] for k in ("sha", "sum", "cp", "new", "cached")}

    def timed(name: str, fn: Any) -> None:
        settle(1.0)
        start = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - start)

    def backup_new() -> None:
        local_backup.reset(models)
        store = local_backup.fresh_store(models)
        timed("new", lambda: backup_model(store, None, "version"))
        local_backup.drop_copies(models)

    def backup_cached() -> None:
        warm = local_backup.fresh_store(models)
        warm.sha256(src)
        warm.cache.save()
        store = local_backup.fresh_store(models)
        timed("cached", lambda: backup_model(store, None, "pre-update"))
        local_backup.drop_copies(models)

    for _ in range(reps):
        timed("sha", lambda: hashing.hash_file(src))
        timed(
            "sum", lambda: subprocess.run(["sha256sum", str(src)], check=True, capture_output=True)
        )
        timed("cp", lambda: local_backup.cp_sync(src, dst))
        dst.unlink()
        backup_new()
        backup_cached()
    shutil.rmtree(directory)
    mbs = size / 1e6

    def row(label: str, name: str) -> str:
        t = med(times[name])
        return f"| {label} | {t:.2f} | {mbs / t:.0f} |"

    return [
        f"### Local part: {mbs:.0f} MB checkpoint in the page cache, median of {reps}",
        "",
        "| operation | s | MB/s |",
        "|---|---|---|",
        row("`sha256sum FILE` (coreutils)", "sum"),
        row("model-safety's sha256 of a file (agent.local.hashing.hash_file)", "sha"),
        row("`cp FILE COPY && sync COPY`", "cp"),
        row("model-safety backup, file never seen (hash + copy + fsync + rename)", "new"),
        row("model-safety backup, hash cached (verified copy + fsync + rename)", "cached"),
        "",
    ]
