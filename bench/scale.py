"""Benchmark: push and pull of a large checkpoint (10 GB by default) on SeaweedFS (loopback).

    .venv/bin/python bench/scale.py [--size-gb 10]

Measures, for one checkpoint of --size-gb written by torch.save (12 fp32 tensors, built on a
memory-mapped file so that making it does not need the RAM):

- the first push (new content: hash, range hashes, the checker in its child beside the upload),
  wall time, and the push process's own peak RSS, sampled from /proc every 50 ms (the checker
  child runs under its own cap and is not counted; wait4's figure is not used either: a forked
  child starts with its parent's peak);
- a pull into an empty project (every range checked against the range hashes recorded at push):
  wall time and peak RSS;
- a push killed with SIGKILL once 70% of the file has gone through a counting proxy, then the
  same push again: the bytes the second run sends, as a share of the file.

Needs about 2x --size-gb of free disk at any time (the file and one copy on the server; the
first object is deleted before the kill test, the file before the pull). Prints a markdown
table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _s3env import (
    CLI,
    MODEL_FILE,
    FaultProxy,
    s3_remote,
    seaweedfs,
    settle,
    write_aws_profiles,
    write_project,
)

LAYERS = 12


def make_large_checkpoint(path: Path, size_gb: float) -> None:
    """torch.save of LAYERS fp32 tensors whose storage is a memory-mapped file of random
    values, so the RSS of making it stays small."""
    import numpy as np
    import torch

    n = int(size_gb * 1e9) // 4 // LAYERS
    raw = path.with_suffix(".raw")
    data = np.memmap(raw, dtype=np.float32, mode="w+", shape=(LAYERS * n,))
    rng = np.random.default_rng(0)
    step = 64 << 20
    for at in range(0, LAYERS * n, step):
        end = min(LAYERS * n, at + step)
        data[at:end] = rng.standard_normal(end - at, dtype=np.float32)
    data.flush()
    state = {f"layers.{i}.weight": torch.from_numpy(data[i * n : (i + 1) * n]) for i in range(12)}
    torch.save(state, path)
    del state, data
    raw.unlink()


@dataclass
class Run:
    code: int
    seconds: float
    own_peak_mb: float  # the command's own process, sampled
    err: str


def run(root: Path, *args: str, kill_when=None) -> Run:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [CLI, *args], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        status = Path(f"/proc/{proc.pid}/status")
        while not stop.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                return
            if kill_when is not None and kill_when():
                proc.send_signal(signal.SIGKILL)
                return
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status = os.waitpid(proc.pid, 0)
    stop.set()
    sampler.join()
    err = proc.stderr.read() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    return Run(code, time.perf_counter() - start, peak / 1024, err)


def checked(r: Run, what: str) -> Run:
    if r.code != 0:
        sys.exit(f"{what} failed ({r.code}): {r.err[-2000:]}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=10.0)
    ap.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make is not None:
        make_large_checkpoint(args.make, args.size_gb)
        return
    tmp = Path(tempfile.mkdtemp(prefix="ms-bench-scale-"))
    try:
        os.environ.update(write_aws_profiles(tmp))
        src = tmp / "src" / MODEL_FILE
        src.parent.mkdir()
        # in a child: a forked command starts with its parent's peak RSS, so this process stays
        # small (no torch, no mapped file) to keep the measured peaks the commands' own
        make = [sys.executable, __file__, "--make", str(src), "--size-gb", str(args.size_gb)]
        subprocess.run(make, check=True)
        size = src.stat().st_size
        rows = []
        with seaweedfs(tmp / "seaweedfs") as server:
            proxy = FaultProxy(server.endpoint_url)
            proxy._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
            proxy.start()
            a = tmp / "a"
            models = write_project(a, s3_remote(server, "scale-a"))
            models.mkdir(parents=True)
            os.link(src, models / MODEL_FILE)
            settle(2)
            first = checked(run(a, "push"), "first push")
            rows.append(("push, new content (hash + check beside the upload)", first))
            client = server.client()
            client.delete_object(Bucket=server.bucket, Key=f"scale-a/{MODEL_FILE}")
            url = f"http://127.0.0.1:{server.ports[0]}/vol/vacuum?garbageThreshold=0.0001"
            urllib.request.urlopen(url, timeout=600).read()  # frees its disk space now
            write_project(a, s3_remote(server, "scale-k", endpoint_url=proxy.url))
            proxy.clear()
            threshold = int(0.7 * size)
            killed = run(a, "push", kill_when=lambda: proxy.body_bytes >= threshold)
            at = proxy.body_bytes / size
            proxy.clear()
            again = checked(run(a, "push"), "push after the kill")
            resent = proxy.body_bytes
            proxy.stop()
            shutil.rmtree(a)  # the source's last link: room for the pulled copy
            src.unlink()
            b = tmp / "b"
            write_project(b, s3_remote(server, "scale-k"))
            settle(2)
            pull = checked(run(b, "pull"), "pull")
            rows.append(("pull into an empty project", pull))
        print(f"## {size / 1e9:.1f} GB checkpoint on SeaweedFS (loopback)\n")
        print("| command | wall s | MB/s | peak RSS MB |")
        print("|---|---|---|---|")
        for label, r in rows:
            mbs = size / 1e6 / r.seconds
            print(f"| {label} | {r.seconds:.1f} | {mbs:.0f} | {r.own_peak_mb:.0f} |")
        note = "" if killed.code != 0 else " (it finished before the kill)"
        print(
            f"\n- push killed with SIGKILL at {at:.0%} of the file{note}; the same push again "
            f"sent {resent / 1e6:.0f} MB ({resent / size:.0%} of the file) in {again.seconds:.1f} s"
        )
        print(f"- load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
