"""Benchmark: the sync agent against SeaweedFS on loopback, with boto3 measured in the same run.

    .venv/bin/python bench/sync_s3.py [--size-mb 400] [--reps 3] [--settle 2]

Everything runs through the real CLI (`model-safety ...` as a child process, so each figure
includes interpreter start-up), against a project whose config.yaml names an s3 remote with the
provider's default transfer settings. Prints, each as the median of --reps runs:
- push throughput / boto3 upload_file (default TransferConfig)              goal >= 1.0x
- pull throughput (into an empty models dir) / boto3 download_file          goal >= 1.3x
- peak RSS of the push process (wait4 of that child)                        goal < 150 MB
- bytes re-sent by a push after a kill -9 at ~70% of a push (counted by a proxy)
                                                  goal <= 30% of the file + one part per connection
- wall time of a no-op `model-safety run` over 20 versions already on the remote   goal < 1 s
A quick smoke run: --size-mb 40 --reps 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _s3env import (
    MODEL,
    MODEL_FILE,
    Child,
    FaultProxy,
    cli,
    hash_file,
    make_checkpoint,
    s3_remote,
    seaweedfs,
    settle,
    write_aws_profiles,
    write_project,
)

MIB = 1024**2
PART, CONNECTIONS = 8 * MIB, 10  # the s3 provider's defaults (and boto3's)
med = statistics.median


@dataclass
class Row:
    name: str
    value: str
    goal: str
    ok: bool | None  # None: information only

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: str, goal: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(name, value, goal, ok))


def checked(child: Child, what: str) -> Any:
    """The child's --json output; any failure stops the benchmark with its stderr."""
    if child.code != 0:
        raise SystemExit(f"{what} failed ({child.code}):\n{child.out}\n{child.err}")
    return json.loads(child.out) if child.out.strip().startswith(("{", "[")) else None


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- push / pull throughput ----------------------------------------------------------------
def bench_push(server: Any, src: Path, root: Path, reps: int, pause: float, res: Results) -> None:
    client, size = server.client(), src.stat().st_size
    mb = size / 1e6
    # First push of a project: hashes the file and loads it once for the structural check.
    write_project(root, s3_remote(server, "push-first"))
    settle(pause)
    first = cli(root, "push", "--json")
    checked(first, "first push")
    t_sha = timed(lambda: hash_file(src))
    t_boto, t_push, t_inner, rss = [], [], [], []
    for i in range(reps):  # interleaved, so drift on the box hits both sides alike
        settle(pause)
        key = f"boto3/upload-{i}.pth"
        t_boto.append(timed(lambda key=key: client.upload_file(str(src), server.bucket, key)))
        write_project(root, s3_remote(server, f"push-{i}"))  # fresh prefix: everything is sent
        settle(pause)
        child = cli(root, "push", "--json")
        report = checked(child, "push")[0]
        assert report["files"] == 1 and report["bytes_sent"] == size, report
        t_push.append(child.seconds)
        t_inner.append(report["seconds"])
        rss.append(child.maxrss_mb)
    # The same command with nothing left to send: start-up, listing, local hashing, no upload.
    t_fixed = []
    for _ in range(reps):
        child = cli(root, "push", "--json")
        assert checked(child, "push with nothing to send")[0]["files"] == 0
        t_fixed.append(child.seconds)
    ratio = med(t_boto) / med(t_push)
    res.add("boto3 upload_file", f"{med(t_boto):6.2f} s  {mb / med(t_boto):5.0f} MB/s")
    res.add("model-safety push", f"{med(t_push):6.2f} s  {mb / med(t_push):5.0f} MB/s")
    res.add("  push / boto3 upload_file", f"{ratio:6.2f}x", ">= 1.0x", ratio >= 1.0)
    inner = med(t_boto) / med(t_inner)
    res.add("  same, time inside the command", f"{inner:6.2f}x", "(info)")
    res.add("  push with nothing to send", f"{med(t_fixed):6.2f} s", "(info)")
    res.add("peak RSS of push (max of reps)", f"{max(rss):6.0f} MB", "< 150 MB", max(rss) < 150)
    res.add("first push of a project", f"{first.seconds:6.2f} s  {mb / first.seconds:5.0f} MB/s")
    res.add("  its peak RSS", f"{first.maxrss_mb:6.0f} MB", "< 150 MB", first.maxrss_mb < 150)
    res.notes += [
        "push: whole `model-safety push` process (start-up, listing, upload, catalog write);",
        "  'inside the command' is the push report's own 'seconds' (no interpreter start-up).",
        "  Each timed push goes to a fresh prefix; the first push of the project ran the",
        "  structural check (in a child process, counted in its peak RSS) and cached the file's",
        "  sha256; the upload still reads and hashes every byte it sends, to verify it end to",
        f"  end (one sha256 pass alone: {t_sha:.2f} s).",
    ]


def bench_pull(server: Any, src: Path, tmp: Path, reps: int, pause: float, res: Results) -> None:
    client, size = server.client(), src.stat().st_size
    mb = size / 1e6
    key = f"push-0/{MODEL_FILE}"  # what the agent pushed; boto3 downloads the same object
    t_boto, t_pull, t_inner, rss = [], [], [], []
    for i in range(reps):
        dest = str(tmp / "boto3-download.pth")
        settle(pause)
        t_boto.append(timed(lambda d=dest: client.download_file(server.bucket, key, d)))
        os.unlink(dest)
        root = tmp / f"pull-{i}"
        models = write_project(root, s3_remote(server, "push-0"))  # no models dir at all
        settle(pause)
        child = cli(root, "pull", "--json")
        report = checked(child, "pull")
        assert report["files"] == 1 and report["bytes_received"] == size, report
        if i == 0 and not filecmp.cmp(src, models / MODEL_FILE, shallow=False):
            raise SystemExit("pull brought back different bytes")
        t_pull.append(child.seconds)
        t_inner.append(report["seconds"])
        rss.append(child.maxrss_mb)
        shutil.rmtree(root)
    ratio = med(t_boto) / med(t_pull)
    res.add("boto3 download_file", f"{med(t_boto):6.2f} s  {mb / med(t_boto):5.0f} MB/s")
    res.add("model-safety pull", f"{med(t_pull):6.2f} s  {mb / med(t_pull):5.0f} MB/s")
    res.add("  pull / boto3 download_file", f"{ratio:6.2f}x", ">= 1.3x", ratio >= 1.3)
    res.add("  same, time inside the command", f"{med(t_boto) / med(t_inner):6.2f}x", "(info)")
    res.add("  peak RSS of pull (max of reps)", f"{max(rss):6.0f} MB", "(info)")
    res.notes.append(
        "pull: into a project with no models dir at all; sha256 checked, fsynced, renamed."
    )


# -- kill -9 at ~70% of a push, then push again ----------------------------------------------
def bench_kill(server: Any, src: Path, root: Path, res: Results) -> None:
    size = src.stat().st_size
    proxy = FaultProxy(server.endpoint_url)
    # a killed client leaves the proxy's handler threads with reset sockets: expected, not news
    proxy._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    proxy.start()
    try:
        models = write_project(root, s3_remote(server, "kill", endpoint_url=proxy.url))
        models.mkdir(parents=True)
        os.link(src, models / MODEL_FILE)
        # the first push hashes and loads the file before sending: warm that up so the kill
        # lands in the transfer, and time does not matter here
        checked(cli(root, "push", "--dry-run"), "push --dry-run")
        proxy.clear()
        threshold = int(0.7 * size)
        first = cli(root, "push", kill_when=lambda: proxy.body_bytes >= threshold)
        if first.killed_at is None:
            raise SystemExit(f"the push finished before 70% was seen:\n{first.out}{first.err}")
        _quiet(proxy)  # requests already inside the proxy still reach the server
        passed = proxy.body_bytes
        journaled = sum(
            len(p.read_text().splitlines()) - 1
            for p in (models / ".model-safety" / "remotes" / "s3" / "uploads").glob("*.jsonl")
        )
        proxy.clear()
        second = cli(root, "push", "--json")
        report = checked(second, "push after kill")[0]
        resent = proxy.body_bytes
        if report["files"] != 1:  # a small file: the last parts and Complete beat the kill
            res.notes.append("note: the killed push had already completed the upload")
    finally:
        proxy.stop()
    head = server.client().head_object(Bucket=server.bucket, Key=f"kill/{MODEL_FILE}")
    if head["ContentLength"] != size:
        raise SystemExit(f"after the resumed push the object has {head['ContentLength']} bytes")
    bound = 0.3 * size + CONNECTIONS * PART
    res.add("push killed (-9) at", f"{passed / size:6.1%} sent", "~70%")
    res.add(
        "  bytes re-sent by the next push",
        f"{resent / 1e6:6.1f} MB ({resent / size:.0%})",
        f"<= {bound / 1e6:.0f} MB",
        resent <= bound,
    )
    res.notes.append(
        f"kill: request body bytes counted by a proxy in front of SeaweedFS; {journaled} of "
        f"{-(-size // PART)} parts were journaled when the push died; goal = 30% of the file "
        f"+ {CONNECTIONS} connections x {PART // MIB} MiB parts."
    )


def _quiet(proxy: FaultProxy, still: float = 1.0, limit: float = 30.0) -> None:
    """Wait until the proxy forwards nothing more for ``still`` seconds (bounded)."""
    deadline = time.monotonic() + limit
    last, since = proxy.body_bytes, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < still:
        time.sleep(0.05)
        if proxy.body_bytes != last:
            last, since = proxy.body_bytes, time.monotonic()


# -- a no-op overnight run over 20 versions on the remote -----------------------------------
def bench_noop_run(server: Any, root: Path, reps: int, res: Results) -> None:
    models = write_project(root, s3_remote(server, "noop"), max_backups=25, keep_last=25)
    newest = dt.date(2026, 1, 5)
    days = [newest - dt.timedelta(weeks=k) for k in range(20)]
    make_checkpoint(models / MODEL_FILE, 1, seed=100)
    for k, day in enumerate(days):  # written by hand; the catalog is rebuilt from the names
        make_checkpoint(models / f"{MODEL}_v{day.isoformat()}.pth", 1, seed=k)
    report = checked(cli(root, "push", "--json"), "push of 20 versions")[0]
    assert report["files"] == 21, report
    objects = _remote_keys(server, "noop/")
    local = sorted(p.name for p in models.iterdir())
    today = (newest + dt.timedelta(days=1)).isoformat()  # next version due in 6 days
    times, problems = [], []
    for _ in range(reps):
        settle(0.5)
        child = cli(root, "run", "--today", today, "--json")
        data = checked(child, "run")
        times.append(child.seconds)
        problems.extend(_not_noop(data))
    after = sorted(p.name for p in models.iterdir())
    if _remote_keys(server, "noop/") != objects or after != local:
        problems.append("files changed on a side")
    ok = med(times) < 1.0 and not problems
    res.add("no-op `run`, 20 versions on remote", f"{med(times):6.2f} s", "< 1 s", ok)
    res.notes.append(
        f"run: whole process, --today the day after the newest of 20 weekly versions; "
        f"{len(objects)} objects on the remote; "
        + (f"NOT a no-op: {problems}" if problems else "checked: nothing made, sent or deleted.")
    )


def _remote_keys(server: Any, prefix: str) -> list[str]:
    pages = server.client().get_paginator("list_objects_v2")
    return sorted(
        o["Key"] for p in pages.paginate(Bucket=server.bucket, Prefix=prefix) for o in p["Contents"]
    )


def _not_noop(data: dict[str, Any]) -> list[str]:
    found = [a for a in data["actions"] if "next dated version due" not in a]
    found += data["problems"]
    found += [f"local prune {d['name']}" for d in data["prune"] if not d["keep"]]
    for r in data["remotes"]:
        if r["files"] or r["bytes_sent"] or r["bytes_copied"]:
            found.append(f"{r['remote']}: sent {r['files']} file(s)")
        found += [f"remote prune {d['name']}" for d in r["prune"] if not d["keep"]]
    return found


def print_table(res: Results, size: int, reps: int) -> None:
    import boto3

    width = max(len(r.name) for r in res.rows) + 2
    vwidth = max(len(r.value) for r in res.rows) + 2
    gwidth = max(len(r.goal) for r in res.rows) + 2
    print(
        f"model-safety vs boto3 {boto3.__version__} defaults on SeaweedFS (weed mini, loopback), "
        f"{size / 1e6:.0f} MB torch checkpoint, median of {reps}"
    )
    print(f"{'measure':<{width}}{'figure':<{vwidth}}{'goal':<{gwidth}}verdict")
    print("-" * (width + vwidth + gwidth + 7))
    for r in res.rows:
        print(f"{r.name:<{width}}{r.value:<{vwidth}}{r.goal:<{gwidth}}{r.verdict}")
    for note in res.notes:
        print(note)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=400)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds before each timing")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ms-bench-s3-"))
    try:
        os.environ.update(write_aws_profiles(tmp))
        push_root = tmp / "push"
        src = push_root / "models" / MODEL_FILE
        make_checkpoint(src, args.size_mb)
        res = Results()
        load = os.getloadavg()[0]
        with seaweedfs(tmp / "seaweedfs") as server:
            bench_push(server, src, push_root, args.reps, args.settle, res)
            bench_pull(server, src, tmp, args.reps, args.settle, res)
            bench_kill(server, src, tmp / "kill", res)
            bench_noop_run(server, tmp / "noop", args.reps, res)
        res.notes.append(
            f"load average (2 cores, shared box): {load:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end"
        )
        print_table(res, src.stat().st_size, args.reps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
