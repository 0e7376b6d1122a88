"""Benchmark: delta push after a partial fine-tune, against a full push of the same file measured
in the same run, on SeaweedFS and a local (NAS-like) remote.

    .venv/bin/python bench/delta.py [--size-mb 400] [--reps 3] [--settle 1]

A checkpoint of 12 fp32 layers (torch.save, and the same tensors as safetensors). Each round:
a project pushes the original to a fresh remote prefix (not timed), a fine-tune rewrites it, and
the timed `model-safety push` sends it with the original there to reuse (delta); a second
project pushes the same rewritten file to an empty prefix (full). Each case is timed with the
rewritten file in two states (--content):

- new: content the agent has never seen, so both pushes hash it and run the checker on it
  beside the transfer (a `push` straight after the fine-tune);
- known: `model-safety validate` ran on it first (untimed), so its hash, range hashes and
  verdict are recorded and both pushes only transfer (the weekly `run`, whose backup step hashes
  and checks the file before its push step, or a push after `backup`).

Cases:

- torch file, last 2 of 12 layers changed     goal: sent <= 25% of the file, time <= 0.4x full
- torch file, every layer changed              goal: time <= 1.05x full (nothing to reuse)
- safetensors file, last 2 of 12 layers changed   goal: sent <= 25%, time <= 0.4x full

On loopback the server copies the reused parts with the same two cores that would have received
them, so the time a delta saves is the time of the bytes on the wire: the last rows push the
first case again through a proxy that gives uploads one link of --uplink-mbps (default 400).

Medians of --reps rounds; bytes sent and copied come from `push --json`. A quick smoke run:
--size-mb 48 --reps 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from _s3env import (
    MODEL,
    FaultProxy,
    cli,
    s3_remote,
    seaweedfs,
    settle,
    write_aws_profiles,
)

LAYERS = 12


def write_model(path: Path, size_mb: int, tuned: int, fmt: str) -> None:
    """12 layers of random fp32, the last ``tuned`` of them changed by a 'fine-tune'."""
    import torch

    n = size_mb * 1024 * 1024 // 4 // LAYERS
    state = {}
    for i in range(LAYERS):
        t = torch.randn(n, generator=torch.Generator().manual_seed(i))
        state[f"layers.{i}.weight"] = t * 0.999 + 0.001 if i >= LAYERS - tuned else t
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)


def project(root: Path, remote: dict[str, Any], model_file: str) -> Path:
    root.mkdir(parents=True)
    doc = {
        "MODEL_SAFETY": {
            "models_dir": "models",
            "models": [{"name": MODEL, "file": model_file}],
            "max_backups": 4,
            "backup_interval_days": 7,
            "min_free_space_gb": 0,
            "remotes": {"r": remote},
        }
    }
    (root / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "models"


def push(root: Path) -> tuple[float, dict[str, Any]]:
    child = cli(root, "push", "--json")
    if child.code != 0:
        sys.exit(f"push failed in {root}: {child.err[-2000:]}")
    (report,) = json.loads(child.out)
    return child.seconds, report


@dataclass
class Case:
    name: str
    fmt: str
    tuned: int
    max_sent: float | None
    max_ratio: float


CASES = [
    Case("torch, last 2 layers changed", "pth", 2, 0.25, 0.4),
    Case("torch, every layer changed", "pth", LAYERS, None, 1.05),
    Case("safetensors, last 2 layers changed", "safetensors", 2, 0.25, 0.4),
]


def prepare(root: Path, known: bool) -> None:
    """Known content: hash and judge the current file before the timed push, as a backup does."""
    if known:
        child = cli(root, "validate")
        if child.code != 0:
            sys.exit(f"validate failed in {root}: {child.err[-2000:]}")


def run_case(  # type: ignore[no-untyped-def]
    case: Case, remote_for, tmp: Path, size_mb: int, reps: int, pause: float, known: bool
) -> list:
    model_file = f"{MODEL}.{case.fmt}"
    # under the model's own name: torch.save names the archive's inner folder after the file,
    # so a checkpoint saved under another name differs in every record's offset
    original = tmp / "orig" / model_file
    tuned = tmp / f"tuned-{case.tuned}" / model_file
    write_model(original, size_mb, 0, case.fmt)
    write_model(tuned, size_mb, case.tuned, case.fmt)
    size = tuned.stat().st_size
    delta_s, full_s, sent, copied = [], [], [], []
    for _ in range(reps):
        tag = uuid.uuid4().hex[:8]
        a = tmp / f"delta-{tag}"
        models = project(a, remote_for(f"d-{tag}"), model_file)
        models.mkdir()
        shutil.copy(original, models / model_file)
        push(a)
        shutil.copy(tuned, models / model_file)
        prepare(a, known)
        settle(pause)
        seconds, report = push(a)
        delta_s.append(seconds)
        sent.append(report["bytes_sent"])
        copied.append(report["bytes_copied"])
        b = tmp / f"full-{tag}"
        models = project(b, remote_for(f"f-{tag}"), model_file)
        models.mkdir()
        shutil.copy(tuned, models / model_file)
        prepare(b, known)
        settle(pause)
        seconds, _ = push(b)
        full_s.append(seconds)
        shutil.rmtree(a)
        shutil.rmtree(b)
    med = statistics.median
    ratio = med(delta_s) / med(full_s)
    share = med(sent) / size
    ok = ratio <= case.max_ratio and (case.max_sent is None or share <= case.max_sent)
    return [
        case.name,
        "known" if known else "new",
        f"{size / 1e6:.0f} MB",
        f"{share:.0%} sent, {med(copied) / size:.0%} copied",
        f"{med(delta_s):.2f} s vs {med(full_s):.2f} s = {ratio:.2f}x",
        ("sent <= 25%, " if case.max_sent else "") + f"time <= {case.max_ratio}x",
        "PASS" if ok else "MISS",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=400)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument(
        "--uplink-mbps",
        type=float,
        default=400,
        help="also push through a proxy limiting uploads to this many Mbit/s (0: skip)",
    )
    ap.add_argument(
        "--content",
        choices=["new", "known", "both"],
        default="both",
        help="time pushes of content never seen (new), already hashed and checked (known), or both",
    )
    args = ap.parse_args()
    states = {"new": [False], "known": [True], "both": [True, False]}[args.content]
    tmp = Path(tempfile.mkdtemp(prefix="ms-bench-delta-"))
    rows = []
    try:
        os.environ.update(write_aws_profiles(tmp))
        with seaweedfs(tmp / "seaweedfs") as server:
            for case in CASES:
                for known in states:
                    row = run_case(case, lambda p: s3_remote(server, p), tmp, args.size_mb,
                                   args.reps, args.settle, known)  # fmt: skip
                    rows.append(["s3 (SeaweedFS)", *row])
            if args.uplink_mbps:
                proxy = FaultProxy(server.endpoint_url).start()
                proxy.uplink = args.uplink_mbps * 1e6 / 8
                try:
                    shaped = lambda p: s3_remote(server, p, endpoint_url=proxy.url)  # noqa: E731
                    for known in states:
                        row = run_case(CASES[0], shaped, tmp, args.size_mb, args.reps,
                                       args.settle, known)  # fmt: skip
                        rows.append([f"s3, {args.uplink_mbps:g} Mbit/s uplink", *row])
                finally:
                    proxy.stop()
        nas = tmp / "nas"
        nas.mkdir()  # the mount point; each round's remote is a folder in it
        for case in CASES[:2]:
            for known in states:
                row = run_case(case, lambda p: {"type": "local", "path": str(nas / p)}, tmp,
                               args.size_mb, args.reps, args.settle, known)  # fmt: skip
                rows.append(["local remote", *row])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, args.reps)


def report(rows: list[list[str]], reps: int) -> None:
    head = ["remote", "case", "content", "size", "bytes", "delta vs full push", "goal", "verdict"]
    widths = [max(len(str(r[i])) for r in [head, *rows]) + 2 for i in range(len(head))]
    for r in [head, *rows]:
        print("".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"median of {reps}; load average at end {os.getloadavg()[0]:.1f} (2 cores)")


if __name__ == "__main__":
    main()
