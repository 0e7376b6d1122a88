"""Benchmark: model-safety push/pull against rclone, s5cmd, aws cli and boto3 on SeaweedFS.

    .venv/bin/python bench/peers.py [--sizes 400,2000] [--reps 5] [--settle 1]
                                    [--peers boto3,rclone,s5cmd,aws] [--no-extra] [--no-write]

One run starts SeaweedFS (weed mini) on loopback, makes a torch checkpoint of each size, and
times every tool as a child process (wait4: wall time, peak RSS, user+sys CPU; the server's CPU
from /proc/<weed pid>/stat around each transfer), alternating the tools from one repetition to
the next, median of --reps. Every download is compared byte for byte with the source. Then
(unless --no-extra) section 3: a no-op sync over 20 pushed versions, bytes re-sent after
a kill -9 at 70% of an upload, and the local part (backup vs cp+sync, hashing vs sha256sum).
The markdown table goes to stdout and to bench/results/<date>-<host>.md, with a PNG of the
throughput per tool (also copied to docs/throughput.png). See bench/README.md.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _peer_tools import Peer, find_peers, peer_env
from _report import MS_NEW, OURS
from _s3env import (
    CLI,
    MODEL_FILE,
    Child,
    cli,
    make_checkpoint,
    process_cpu_s,
    run_child,
    s3_remote,
    seaweedfs,
    settle,
    write_aws_profiles,
    write_project,
)

MS = "model-safety"
ALL_PEERS = ("boto3", "rclone", "s5cmd", "aws")


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    cpu_s: float
    server_cpu_s: float


@dataclass
class Bench:
    server: Any
    tmp: Path
    settle: float
    peers: list[Peer]
    env: dict[str, str]
    # (tool, "upload"|"download", size in bytes) -> samples
    samples: dict[tuple[str, str, int], list[Sample]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # reported with the results
    broken: set[str] = field(default_factory=set)  # tools left out after a failure

    def measure(self, tool: str, way: str, size: int, run: Any) -> Child | None:
        """Settle, run ``run()`` (which returns a Child), record it with the server's CPU. A
        failed command leaves that tool out of the rest of the run (with a line in the results)
        instead of ending the run."""
        settle(self.settle)
        before = process_cpu_s(self.server.process.pid)
        child = run()
        server_cpu = process_cpu_s(self.server.process.pid) - before
        if child.code != 0:
            last = ((child.err or child.out).strip().splitlines() or ["no output"])[-1]
            self.fail(tool, f"{way} of {size / 1e6:.0f} MB exited with {child.code}: {last}")
            return None
        sample = Sample(child.seconds, child.maxrss_mb, child.cpu_s, server_cpu)
        self.samples.setdefault((tool, way, size), []).append(sample)
        return child

    def fail(self, tool: str, what: str) -> None:
        print(f"FAILED: {tool}: {what}", flush=True)
        self.failures.append(f"{tool}: {what}")
        self.broken.add(tool)


def reclaim(server: Any) -> None:
    """Ask the master to compact volumes now, so deleted uploads free their disk space (a run
    writes tens of GB otherwise)."""
    url = f"http://127.0.0.1:{server.ports[0]}/vol/vacuum?garbageThreshold=0.0001"
    try:
        urllib.request.urlopen(url, timeout=120).read()
    except OSError as exc:
        print(f"note: vacuum failed ({exc}); disk space is freed later", flush=True)


def delete_prefix(server: Any, prefix: str) -> None:
    client = server.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=server.bucket, Key=obj["Key"])


def bench_size(b: Bench, src: Path, reps: int) -> None:
    """Upload and download of one checkpoint by every tool, ``reps`` rounds, rotating the order;
    model-safety's uploads twice, of new content (hash and check) and of content it knows."""
    size = src.stat().st_size
    tag = f"s{size // 10**6}"
    root = b.tmp / f"ms-{tag}"
    models = write_project(root, s3_remote(b.server, f"{tag}-first"))
    models.mkdir(parents=True)
    os.link(src, models / MODEL_FILE)
    first = b.measure(MS, "first push", size, lambda: cli(root, "push", "--json"))
    if first is None:
        raise SystemExit(f"the first push failed: {b.failures[-1]}")
    first_key = f"{tag}-first/{MODEL_FILE}"
    tools = [MS, MS_NEW, *(p.name for p in b.peers)]
    by_name = {p.name: p for p in b.peers}
    for rep in range(reps):
        order = tools[rep % len(tools) :] + tools[: rep % len(tools)]
        for tool in (t for t in order if t not in b.broken):
            prefix = f"{tag}-{tool}-up-{rep}"
            if tool in OURS:
                write_project(root, s3_remote(b.server, prefix))
                if tool == MS_NEW:  # nothing known: hash, range hashes and check all run
                    shutil.rmtree(models / ".model-safety", ignore_errors=True)
                run = lambda: cli(root, "push", "--json")  # noqa: E731
            else:
                argv = by_name[tool].up(src, f"{prefix}/{MODEL_FILE}")
                run = lambda argv=argv: run_child(argv, cwd=b.tmp, env=b.env)  # noqa: E731
            if b.measure(tool, "upload", size, run) is not None:
                key = f"{prefix}/{MODEL_FILE}"
                head = b.server.client().head_object(Bucket=b.server.bucket, Key=key)
                if head["ContentLength"] != size:
                    b.fail(tool, f"uploaded {head['ContentLength']} of {size} bytes")
            delete_prefix(b.server, prefix + "/")
        reclaim(b.server)
        for tool in (t for t in order if t not in b.broken and t != MS_NEW):
            if tool == MS:
                pull_root = b.tmp / f"pull-{tag}"
                dest = write_project(pull_root, s3_remote(b.server, f"{tag}-first")) / MODEL_FILE
                run = lambda root=pull_root: cli(root, "pull", "--json")  # noqa: E731
            else:
                pull_root = None
                dest = b.tmp / f"download-{tool}.pth"
                argv = by_name[tool].down(first_key, dest)
                run = lambda argv=argv: run_child(argv, cwd=b.tmp, env=b.env)  # noqa: E731
            if b.measure(tool, "download", size, run) is not None and not filecmp.cmp(
                src, dest, shallow=False
            ):
                b.fail(tool, f"the download of {size / 1e6:.0f} MB differs from the source")
            if pull_root is not None:
                shutil.rmtree(pull_root, ignore_errors=True)
            else:
                dest.unlink(missing_ok=True)
    shutil.rmtree(root)


def main() -> None:
    from _report import describe_machine, table, write_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="400,2000", help="checkpoint sizes in MB, comma-separated")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--settle", type=float, default=1.0, help="idle seconds before each timing")
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--no-extra", action="store_true", help="skip section 3")
    ap.add_argument("--no-write", action="store_true", help="print only; no results files")
    args = ap.parse_args()
    if not args.no_write:
        try:
            import matplotlib  # noqa: F401 - the plot is written after the first size
        except ImportError:
            raise SystemExit(
                "the plot needs matplotlib: .venv/bin/pip install -e '.[bench]' (or --no-write)"
            ) from None

    tmp = Path(tempfile.mkdtemp(prefix="ms-bench-peers-"))
    skipped: list[str] = []
    try:
        os.environ.update(write_aws_profiles(tmp))
        load = os.getloadavg()[0]
        with seaweedfs(tmp / "seaweedfs") as server:
            peers = find_peers(server, set(args.peers.split(",")), skipped)
            b = Bench(server, tmp, args.settle, peers, peer_env(server))
            versions = {MS: _ms_version(), **{p.name: p.version for p in peers}}
            extra: list[str] = []

            def report(final: bool) -> None:
                """The results so far: written after every part, so an interrupted run still
                leaves what it measured (marked partial)."""
                head = describe_machine(versions, load, os.getloadavg()[0])
                body = table(b.samples, args.reps, skipped + b.failures)
                mark = [] if final else ["**partial run: the parts below are all it measured**"]
                text = "\n".join([head, "", *mark, body, "", *extra, ""])
                if final:
                    print(text)
                if not args.no_write:
                    write_results(text, b.samples, quiet=not final)

            for mb in (int(s) for s in args.sizes.split(",")):
                src = tmp / "src" / f"checkpoint-{mb}.pth"
                make_checkpoint(src, mb, seed=mb)
                bench_size(b, src, args.reps)
                src.unlink()
                reclaim(server)
                report(final=False)
            if not args.no_extra:
                from _peers_extra import run_extra

                extra = run_extra(server, tmp, peers, b.env, args.reps)
            report(final=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ms_version() -> str:
    import subprocess

    out = subprocess.run([CLI, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    main()
