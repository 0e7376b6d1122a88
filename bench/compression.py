"""Benchmark: zstd compression of real torch checkpoints (fp32, bf16, fp16) against the `zstd`
CLI at the same level and thread count, measured in one run.

    .venv/bin/python bench/compression.py [--size-mb 400] [--repeat 3] [--dir bench/out] [--write]

For each dtype, a checkpoint of freshly initialised nn.Linear weights of about --size-mb; each
figure the median of --repeat runs with the files in the page cache:
- space saved by `compression: zstd` (level 3) and by the byte-grouped layout (each float's bytes
  split into planes before zstd; measured here only, not built: see docs/local.md);
- compression speed: ours (read + zstd on every core, written to a temp and fsynced, as `run`
  does it; the read-back that verifies it is timed on its own) / `zstd -3 -T<cores>` followed by
  `sync FILE` (the CLI's copy made durable too; the CLI alone is shown beside it)   (goal >= 0.9)
- decompress-and-verify: ours (one pass: zstd -d, sha256 of the model bytes and of the .zst) /
  `zstd -d -c > /dev/null` followed by `sha256sum` of the model file                 (goal >= 0.9)
- restore of the compressed version / restore of the same version stored plain     (goal <= 1.5)
The ratios are printed as "x" so that >= 1 means ours is as fast (speed) or as slow (restore).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import parse_config
from agent.local import compress
from agent.local.restore import restore_model
from agent.local.store import Store
from agent.rules.codec import ZSTD_LEVEL

DTYPES = ("float32", "bfloat16", "float16")


def make_checkpoint(path: Path, dtype: str, size_mb: int) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    width = 2048
    per_layer = width * width * torch.tensor([], dtype=getattr(torch, dtype)).element_size()
    layers = max(1, size_mb * 1024 * 1024 // per_layer)
    state = {
        f"layers.{i}.weight": nn.Linear(width, width).weight.data.to(getattr(torch, dtype))
        for i in range(layers)
    }
    torch.save(state, path)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(timed(fn) for _ in range(repeat))


def cli(*args: str) -> None:
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL)


def byte_grouped_saving(path: Path, dtype: str) -> float:
    """Space saved by zstd (same level) on the tensors' bytes split into byte planes."""
    import numpy as np
    import torch
    import zstandard

    state = torch.load(path, weights_only=True)
    width = 2 if dtype != "float32" else 4
    raw = b"".join(t.contiguous().view(torch.uint8).numpy().tobytes() for t in state.values())
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width).T.copy().tobytes()
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=compress.threads())
    return 1 - len(cctx.compress(planes)) / len(raw)


def store_for(models: Path, file: str) -> Store:
    doc = {
        "MODEL_SAFETY": {
            "models_dir": str(models),
            "models": [{"name": "bench", "file": file}],
            "min_free_space_gb": 0,
        }
    }
    return Store(parse_config(doc, models.parent))


def bench_dtype(work: Path, dtype: str, size_mb: int, repeat: int) -> dict[str, float]:
    models = work / dtype
    shutil.rmtree(models, ignore_errors=True)
    models.mkdir(parents=True)
    src = models / "bench.pth"
    make_checkpoint(src, dtype, size_mb)
    size = src.stat().st_size
    threads = compress.threads()
    out: dict[str, float] = {"size": size}

    sha = hashlib.sha256(src.read_bytes()).hexdigest()

    def ours_compress() -> None:  # as `run` does it: the sha256 known, checked by the read-back
        temp, _ = compress.compress_to_temp(
            src, models / "ours.zst", expected_sha256=sha, verify=False
        )
        temp.replace(models / "ours.zst")

    cli_out = models / "cli.zst"
    out["cli_compress"] = median(
        lambda: cli(
            "zstd", "-q", "-f", f"-{ZSTD_LEVEL}", f"-T{threads}", str(src), "-o", str(cli_out)
        ),
        repeat,
    )
    out["cli_compress_sync"] = median(
        lambda: (
            cli("zstd", "-q", "-f", f"-{ZSTD_LEVEL}", f"-T{threads}", str(src), "-o", str(cli_out)),
            cli("sync", str(cli_out)),
        ),
        repeat,
    )
    out["ours_compress"] = median(ours_compress, repeat)
    zst = models / "ours.zst"
    out["read_back"] = median(lambda: compress.scan(zst), repeat)
    out["saved"] = 1 - zst.stat().st_size / size
    out["cli_saved"] = 1 - cli_out.stat().st_size / size
    out["grouped_saved"] = byte_grouped_saving(src, dtype)

    def cli_verify() -> None:
        subprocess.run(f"zstd -q -d -c {cli_out} > /dev/null", shell=True, check=True)
        cli("sha256sum", str(src))

    out["cli_verify"] = median(cli_verify, repeat)
    out["ours_verify"] = out["read_back"]

    # restore: the same content as a plain version and as a compressed one
    plain_version = models / "bench_v2026-11-01.pth"
    shutil.copyfile(src, plain_version)
    zst.replace(models / "bench_v2026-11-02.pth.zst")

    def restore(name: str) -> float:
        src.unlink(missing_ok=True)
        store = store_for(models, "bench.pth")
        store.catalog  # noqa: B018 - cataloguing (a decompressing pass for the .zst) is not timed
        store.save()
        return timed(lambda: restore_model(store, "bench", name))

    restore("bench_v2026-11-01.pth")  # warm-up: the catalog and hash cache
    restore("bench_v2026-11-02.pth.zst")
    plain, packed = [], []
    for _ in range(repeat):  # alternating, so that a slow spell of the disk hits both
        plain.append(restore("bench_v2026-11-01.pth"))
        packed.append(restore("bench_v2026-11-02.pth.zst"))
    out["restore_plain"] = statistics.median(plain)
    out["restore_zst"] = statistics.median(packed)
    shutil.rmtree(models)
    return out


def report(results: dict[str, dict[str, float]], size_mb: int, repeat: int) -> str:
    threads = compress.threads()
    lines = [
        f"# compression: {dt.date.today()} on {os.uname().nodename}, {threads} cores, "
        f"~{size_mb} MB checkpoints, median of {repeat}",
        "",
        f"zstd level {ZSTD_LEVEL}, {threads} threads; speed ratios: ours / the CLI's speed "
        "(goal >= 0.9); restore: compressed / plain time (goal <= 1.5).",
        "",
        "| dtype | size | saved (ours) | saved (zstd CLI) | saved (byte-grouped, not built) "
        "| compress: ours, CLI (+ `sync FILE`), ratio to CLI+sync (to CLI) | read-back check "
        "| decompress+verify: ours, CLI+sha256sum, ratio | restore: plain, .zst, ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dtype, r in results.items():
        mb = r["size"] / 1e6
        lines.append(
            f"| {dtype} | {mb:.0f} MB | {r['saved']:.1%} | {r['cli_saved']:.1%} "
            f"| {r['grouped_saved']:.1%} "
            f"| {r['ours_compress']:.2f} s, {r['cli_compress']:.2f} s "
            f"({r['cli_compress_sync']:.2f} s), "
            f"**{r['cli_compress_sync'] / r['ours_compress']:.2f}x** "
            f"({r['cli_compress'] / r['ours_compress']:.2f}x) "
            f"| {r['read_back']:.2f} s ({mb / r['read_back']:.0f} MB/s) "
            f"| {r['ours_verify']:.2f} s, {r['cli_verify']:.2f} s, "
            f"**{r['cli_verify'] / r['ours_verify']:.2f}x** "
            f"| {r['restore_plain']:.2f} s, {r['restore_zst']:.2f} s, "
            f"**{r['restore_zst'] / r['restore_plain']:.2f}x** |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("bench/out"))
    parser.add_argument("--write", action="store_true", help="also write bench/results/")
    args = parser.parse_args()
    if shutil.which("zstd") is None:
        print("the zstd CLI is needed as the baseline (apt-get install zstd)", file=sys.stderr)
        return 1
    args.dir = args.dir.resolve()  # the store resolves models_dir against the config's folder
    args.dir.mkdir(parents=True, exist_ok=True)
    results = {d: bench_dtype(args.dir, d, args.size_mb, args.repeat) for d in DTYPES}
    text = report(results, args.size_mb, args.repeat)
    print(text)
    if args.write:
        out = Path(__file__).parent / "results" / f"{dt.date.today()}-compression.md"
        out.write_text(text)
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
