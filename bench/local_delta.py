"""Benchmark: a delta put (``put_reusing``) to a local remote against a full ``put`` of the file.

    .venv/bin/python bench/local_delta.py [--ranges 50] [--changed 2] [--repeat 3] [--dir bench/out]

A file of --ranges ranges of 8 MiB (the range-hash size; 50: 419 MB) is stored as the previous
version; a new file differs from it in --changed ranges. Prints the median wall time of a full put
and of a put_reusing of the new file (each to a fresh key, removed between runs, both ending with
fsync and the hash sidecar), the bytes each wrote from the file and copied on the remote, and the
ratio. Both files and the remote live under --dir (one file system: the copies run in the kernel).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from providers import open_provider
from providers.base import Reuse
from providers.ranges import RANGE_SIZE, ranges_of_file
from providers.transfer import hash_file


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranges", type=int, default=50)
    ap.add_argument("--changed", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("bench/out"))
    args = ap.parse_args()
    work = args.dir / "local_delta"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    old, new = work / "old.pth", work / "new.pth"
    rng = random.Random(0)
    data = bytearray(os.urandom(args.ranges * RANGE_SIZE))
    old.write_bytes(data)
    for i in rng.sample(range(args.ranges), args.changed):
        data[i * RANGE_SIZE : (i + 1) * RANGE_SIZE] = rng.randbytes(RANGE_SIZE)
    new.write_bytes(data)
    del data

    remote = open_provider("bench", {"type": "local", "path": str(work / "remote")})
    put_reusing = remote.capabilities.put_reusing
    assert put_reusing is not None
    remote.put("old.pth", old)
    # What the agent passes: the sha256 its hash cache holds.
    expected = {"sha256": hash_file(new)["sha256"]}
    same = ranges_of_file(new).same_as(ranges_of_file(old))
    reuse = Reuse("old.pth", dict(remote.stat("old.pth").identity), RANGE_SIZE, frozenset(same))

    def full() -> tuple[int, int]:
        sent: list[int] = []
        remote.put("new.pth", new, expected_hashes=expected, progress=sent.append)
        return sum(sent), 0

    def delta() -> tuple[int, int]:
        sent: list[int] = []
        _, copied = put_reusing(
            "new.pth", new, reuse, expected_hashes=expected, progress=sent.append
        )
        return sum(sent), copied

    times: dict[str, list[float]] = {"put": [], "put_reusing": []}
    moved: dict[str, tuple[int, int]] = {}
    for _ in range(args.repeat):
        for name, run in (("put", full), ("put_reusing", delta)):  # alternated
            os.sync()
            start = time.perf_counter()
            moved[name] = run()
            times[name].append(time.perf_counter() - start)
            remote.delete("new.pth")

    size = new.stat().st_size
    print(f"{size / 1e6:.0f} MB, {args.ranges} ranges of 8 MiB, {args.changed} changed")
    print(f"median of {args.repeat}, files in the page cache, {work}")
    for name, runs in times.items():
        sent, copied = moved[name]
        print(
            f"  {name:12s} {statistics.median(runs):6.2f} s   "
            f"written from the file {sent / 1e6:6.1f} MB   "
            f"copied on the remote {copied / 1e6:6.1f} MB"
        )
    ratio = statistics.median(times["put_reusing"]) / statistics.median(times["put"])
    print(f"  put_reusing / put: {ratio:.2f}x")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
