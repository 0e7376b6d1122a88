"""Benchmark: the checker (torch's own loader in a confined child) and the push around it, on a
~400 MB torch checkpoint, against baselines measured in the same run.

    .venv/bin/python bench/checker.py [--size-mb 400] [--repeat 3]

Prints, each the median of --repeat runs with the file in the page cache:
- the check of new content / importing torch in a fresh interpreter (the floor of any check
  that asks torch itself), and / one hashlib sha256 pass over the file;
- the check of a 4 KB file / importing torch (what a tiny file costs beyond torch);
- the checker child's peak RSS, and the push process's own peak RSS (VmHWM, the child not
  counted) during a first push of new content to a local remote (goal < 100 MB);
- a second, no-op push (verdicts recorded) / the first push.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _s3env import make_checkpoint  # noqa: E402  (the benches' one checkpoint maker)

from agent.checks.runner import check_file  # noqa: E402


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def sha256_pass(path: Path) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            h.update(chunk)


def import_torch() -> None:
    subprocess.run([sys.executable, "-c", "import torch"], check=True)


def push_peak_rss(project: Path) -> tuple[float, float]:
    """(seconds, the push process's own peak RSS in MiB), polled from /proc while it runs."""
    env_path = f"{ROOT}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "push"],
        cwd=project,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
    )
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.01)
    assert proc.returncode == 0, proc.returncode
    return time.perf_counter() - started, peak / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big, tiny = work / "big.pth", work / "tiny.pth"
        make_checkpoint(big, args.size_mb)
        make_checkpoint(tiny, 0)
        sha256_pass(big)  # into the page cache
        torch_s = statistics.median(timed(import_torch) for _ in range(args.repeat))
        sha_s = statistics.median(timed(lambda: sha256_pass(big)) for _ in range(args.repeat))
        checks = [check_file(big) for _ in range(args.repeat)]
        assert all(v.ok for v in checks), checks
        check_s = statistics.median(v.seconds for v in checks)
        tiny_s = statistics.median(check_file(tiny).seconds for _ in range(args.repeat))
        child_rss = max(v.peak_rss_mb or 0 for v in checks)

        firsts, seconds, rss = [], [], []
        for i in range(args.repeat):
            proj = work / f"proj{i}"
            (proj / "models").mkdir(parents=True)
            shutil.copy(big, proj / "models" / "m.pth")
            (proj / "config.yaml").write_text(
                "MODEL_SAFETY:\n  models_dir: models\n  models: [{file: m.pth}]\n"
                "  min_free_space_gb: 0\n"
                f"  remotes: {{nas: {{type: local, path: {work / f'nas{i}'}}}}}\n"
            )
            (work / f"nas{i}").mkdir()
            t, peak = push_peak_rss(proj)
            firsts.append(t)
            rss.append(peak)
            seconds.append(push_peak_rss(proj)[0])
    size = big.stat().st_size if big.exists() else args.size_mb * 2**20
    print(f"checkpoint {size / 2**20:.0f} MiB, median of {args.repeat}")
    print(f"check of new content        {check_s:6.2f} s")
    print(f"  / import torch            {check_s / torch_s:6.2f}x  ({torch_s:.2f} s)")
    print(f"  / one sha256 pass         {check_s / sha_s:6.2f}x  ({sha_s:.2f} s)")
    print(f"check of a 4 KB file        {tiny_s:6.2f} s = {tiny_s / torch_s:.2f}x import torch")
    print(f"checker child peak RSS      {child_rss:6.0f} MiB (torch alone ~220 MiB)")
    first = statistics.median(firsts)
    print(
        f"first push to a local remote {first:5.2f} s, push process peak RSS "
        f"{max(rss):.0f} MiB (goal < 100 MiB)"
    )
    print(f"no-op push / first push      {statistics.median(seconds) / first:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
