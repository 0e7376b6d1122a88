"""Delta put against a full put of the same file on SeaweedFS (loopback), in one run.

An old file of ``--ranges`` ranges of 8 MiB is put; a new one differing only in ``--changed``
ranges is then put twice per round, each to a fresh key: whole (``put``) and as a delta against
the old one (``put_reusing``), alternating which goes first. Prints the median wall time of each,
the bytes each sent (the provider's progress and the request bodies a counting proxy forwarded)
and the bytes copied on the server. Default transfer settings (8 MiB parts, 10 connections).

    .venv/bin/python bench/delta_s3.py                      # 5 ranges (40 MiB), 1 changed
    .venv/bin/python bench/delta_s3.py --ranges 50 --changed 5 --reps 3
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _s3env import FaultProxy, s3_remote, seaweedfs, write_aws_profiles  # puts the repo on sys.path

from providers import open_provider
from providers.base import Reuse
from providers.ranges import RANGE_SIZE, ranges_of_file


def files(directory: Path, ranges: int, changed: int) -> tuple[Path, Path]:
    rng = random.Random(0)
    data = bytearray(b"".join(rng.randbytes(RANGE_SIZE) for _ in range(ranges)))
    old, new = directory / "old.bin", directory / "new.bin"
    old.write_bytes(data)
    for i in rng.sample(range(ranges), changed):
        data[i * RANGE_SIZE : (i + 1) * RANGE_SIZE] = rng.randbytes(RANGE_SIZE)
    new.write_bytes(data)
    return old, new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranges", type=int, default=5)
    ap.add_argument("--changed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ms-bench-delta-"))
    try:
        os.environ.update(write_aws_profiles(tmp))
        old, new = files(tmp, args.ranges, args.changed)
        same = ranges_of_file(old).same_as(ranges_of_file(new))
        with seaweedfs(tmp / "seaweedfs") as server:
            proxy = FaultProxy(server.endpoint_url).start()
            try:
                remote = open_provider(
                    "bench", s3_remote(server, "delta", endpoint_url=proxy.url), state_dir=tmp
                )
                remote.put("old.bin", old)
                reuse = Reuse("old.bin", remote.stat("old.bin").identity, RANGE_SIZE,
                              frozenset(same))  # fmt: skip
                put_reusing = remote.capabilities.put_reusing
                assert put_reusing is not None
                times: dict[str, list[float]] = {"put": [], "delta": []}
                moved: dict[str, tuple[int, int, int]] = {}
                for rep in range(args.reps):
                    order = ["put", "delta"] if rep % 2 == 0 else ["delta", "put"]
                    for how in order:
                        sent: list[int] = []
                        proxy.clear()
                        start = time.perf_counter()
                        if how == "put":
                            remote.put(f"{how}{rep}", new, progress=sent.append)
                            copied = 0
                        else:
                            _, copied = put_reusing(f"{how}{rep}", new, reuse, progress=sent.append)
                        times[how].append(time.perf_counter() - start)
                        moved[how] = (sum(sent), proxy.body_bytes, copied)
                        remote.delete(f"{how}{rep}")
            finally:
                proxy.stop()
        mib = 1024**2
        print(f"{args.ranges} x 8 MiB, {args.changed} changed, median of {args.reps}:")
        for how in ("put", "delta"):
            sent, body, copied = moved[how]
            took = statistics.median(times[how])
            print(f"  {how:5} {took:6.3f} s  sent {sent / mib:6.1f} MiB (request bodies "
                  f"{body / mib:6.1f} MiB)  copied {copied / mib:6.1f} MiB")  # fmt: skip
        print(f"  load average: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
