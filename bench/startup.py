"""Benchmark: start-up. How soon each command answers, and how soon a push's first request is
on the wire, measured in one run against Python's own start-up.

    .venv/bin/python bench/startup.py [--reps 15]

Every figure is the median of --reps fresh processes (wall time from fork to exit, as
bench/peers.py measures commands):
- `python -c pass` and `python -c "import boto3"`: the floors a Python CLI and one that opens an
  S3 remote cannot go under;
- `model-safety --help`                                           goal < 150 ms
- `model-safety list` and `status` on a project with a model, its backup and an S3 remote:
  `list` opens no remote and imports neither torch nor boto3 (the suite checks it); `status`
  opens the remote to report what it holds and what a push would send;
- a push of content already hashed and checked, to SeaweedFS through a loopback proxy that
  notes when the first request arrives: time from the process's start to that request
                                                                  goal <= 0.2 s
  and the same push with the state wiped (new content: the hash runs beside the remote's
  opening, so the first request should not wait for it).
The no-op nightly `run` against `rclone sync --checksum` is in bench/peers.py (section 3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _s3env import (
    CLI,
    MODEL_FILE,
    FaultProxy,
    child_env,
    cli,
    make_checkpoint,
    run_child,
    s3_remote,
    seaweedfs,
    write_aws_profiles,
    write_project,
)

med = statistics.median


def wall(args: list[str], cwd: Path, reps: int) -> float:
    times = []
    for _ in range(reps):
        child = run_child(args, cwd=cwd)
        if child.code != 0:
            sys.exit(f"{args} failed: {child.err[-1500:]}")
        times.append(child.seconds)
    return med(times)


def first_request(root: Path, proxy: FaultProxy, fresh: bool) -> tuple[float, float]:
    """Seconds from the push's start to its first request at the proxy, and to its exit."""
    state = root / "models" / ".model-safety"
    if fresh and state.exists():
        shutil.rmtree(state)
    proxy.clear()
    env = child_env()
    start = time.perf_counter()
    proc = subprocess.run(
        [CLI, "push"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    end = time.perf_counter()
    if proc.returncode != 0:
        sys.exit(f"push failed: {proc.stderr[-1500:]}")
    if proxy.first_request_at is None:
        sys.exit("the push sent no request through the proxy")
    return proxy.first_request_at - start, end - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--size-mb", type=int, default=40, help="the model pushed (small: start-up)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ms-bench-startup-"))
    rows: list[tuple[str, str, str]] = []
    py = sys.executable
    try:
        os.environ.update(write_aws_profiles(tmp))
        rows.append(
            ("python -c pass", f"{wall([py, '-c', 'pass'], tmp, args.reps) * 1e3:.0f} ms", "")
        )
        boto = wall([py, "-c", "import boto3"], tmp, args.reps)
        rows.append(('python -c "import boto3"', f"{boto * 1e3:.0f} ms", ""))
        helped = wall([CLI, "--help"], tmp, args.reps)
        rows.append(("model-safety --help", f"{helped * 1e3:.0f} ms", "< 150 ms"))
        with seaweedfs(tmp / "seaweedfs") as server:
            proxy = FaultProxy(server.endpoint_url).start()
            try:
                root = tmp / "project"
                models = write_project(root, s3_remote(server, "startup", endpoint_url=proxy.url))
                models.mkdir()
                make_checkpoint(models / MODEL_FILE, args.size_mb)
                if cli(root, "backup").code != 0 or cli(root, "push").code != 0:
                    sys.exit("the first push failed")
                for command in ("status", "list"):
                    seconds = wall([CLI, command], root, args.reps)
                    rows.append((f"model-safety {command}", f"{seconds * 1e3:.0f} ms", ""))
                for fresh in (False, True):
                    firsts, ends = [], []
                    for _ in range(args.reps):
                        first, end = first_request(root, proxy, fresh)
                        firsts.append(first)
                        ends.append(end)
                    what = "new content" if fresh else "known content, nothing to send"
                    rows.append(
                        (
                            f"push ({what}): first request",
                            f"{med(firsts) * 1e3:.0f} ms (exit at {med(ends) * 1e3:.0f} ms)",
                            "<= 200 ms",
                        )
                    )
            finally:
                proxy.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in rows) + 2
    vwidth = max(len(r[1]) for r in rows) + 2
    for name, value, goal in rows:
        print(f"{name.ljust(width)}{value.ljust(vwidth)}{goal}")
    print(f"median of {args.reps}; load average at end {os.getloadavg()[0]:.1f} (2 cores)")


if __name__ == "__main__":
    main()
