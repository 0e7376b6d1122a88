"""bench/peers.py's output: the machine's description, the markdown table with ratios, the
results file under bench/results/ and the throughput plot (matplotlib)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import socket
import statistics
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOCS_PNG = HERE.parent / "docs" / "throughput.png"
MS = "model-safety"
# the same push of content the agent has never seen (a fine-tune just wrote it): hash + check
MS_NEW = "model-safety, new content"
OURS = (MS, MS_NEW)
med = statistics.median


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _ram_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def describe_machine(versions: dict[str, str], load: float, load_end: float) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# model-safety vs peers on SeaweedFS (weed mini, loopback) — {now}",
        "",
        f"- machine: {socket.gethostname()}; {_cpu_model()}, {os.cpu_count()} cores, "
        f"{_ram_gb():.0f} GB RAM; kernel {platform.release()}; Python {platform.python_version()}",
        f"- load average: {load:.2f} at start, {load_end:.2f} at end (client and server share "
        "the cores)",
    ]
    lines += [f"- {name}: {v}" for name, v in versions.items()]
    return "\n".join(lines)


def _cols(samples: list[Any], size: int) -> list[str]:
    t = med(s.seconds for s in samples)
    return [
        f"{size / 1e6 / t:.0f}",
        f"{t:.2f}",
        f"{max(s.rss_mb for s in samples):.0f}",
        f"{med(s.cpu_s for s in samples):.2f}",
        f"{med(s.server_cpu_s for s in samples):.2f}",
    ]


def _ratio(data: dict, way: str, size: int, tool: str = MS) -> str:
    ours = data.get((tool, way, size))
    peers = {k[0]: v for k, v in data.items() if k[1:] == (way, size) and k[0] not in OURS}
    if not ours or not peers:
        return "n/a"
    best = min(peers, key=lambda n: med(s.seconds for s in peers[n]))
    ratio = med(s.seconds for s in peers[best]) / med(s.seconds for s in ours)
    return f"**{ratio:.2f}x** (vs {best})"


def table(data: dict, reps: int, skipped: list[str]) -> str:
    out: list[str] = []
    sizes = sorted({k[2] for k in data})
    tools = [t for t in OURS if any(k[0] == t for k in data)]
    tools += sorted({k[0] for k in data if k[0] not in OURS})
    head = "MB/s | wall s | peak RSS MB | CPU s | server CPU s"
    for size in sizes:
        out += [
            f"## {size / 1e6:.0f} MB checkpoint, median of {reps}",
            "",
            f"| tool | up {head.replace(' | ', ' | up ')} | down "
            f"{head.replace(' | ', ' | down ')} |",
            "|---" * 11 + "|",
        ]
        for tool in tools:
            up = data.get((tool, "upload", size))
            down = data.get((tool, "download", size))
            cells = (_cols(up, size) if up else ["-"] * 5) + (
                _cols(down, size) if down else ["-"] * 5
            )
            out.append(f"| {tool} | " + " | ".join(cells) + " |")
        up_r, down_r = _ratio(data, "upload", size), _ratio(data, "download", size)
        out.append(f"| model-safety / best peer | {up_r} |||| | {down_r} |||| |")
        if (MS_NEW, "upload", size) in data:
            new_r = _ratio(data, "upload", size, MS_NEW)
            out.append(f"| model-safety, new content / best peer | {new_r} |||| | |||| |")
        out.append("")
    out += [
        f"- {MS_NEW}: the push of a file the agent has never seen (its state dir wiped before "
        "each timing), so it hashes the file and the checker judges it in a child while the "
        "upload runs; peak RSS is then the checker's. model-safety: the same push of content "
        "already hashed and judged (a second remote, a new prefix).",
        "- MB/s = file size / median wall time of the whole command (process start to exit);",
        "  peak RSS: wait4 of the command, the largest of it and the children it waited for;",
        "  CPU: user+sys of the command and its children; server CPU: weed's own, same interval.",
        "- every download was compared byte for byte with the source file.",
    ]
    out += [f"- skipped: {s}" for s in skipped]
    return "\n".join(out)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({k[2] for k in data})
    tools = [t for t in OURS if any(k[0] == t for k in data)]
    tools += sorted({k[0] for k in data if k[0] not in OURS})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    width = 0.8 / max(1, len(sizes))
    for ax, way in zip(axes, ("upload", "download"), strict=True):
        for j, size in enumerate(sizes):
            values = [
                size / 1e6 / med(s.seconds for s in data[(t, way, size)])
                if (t, way, size) in data
                else 0
                for t in tools
            ]
            xs = [i + (j - (len(sizes) - 1) / 2) * width for i in range(len(tools))]
            bars = ax.bar(xs, values, width, label=f"{size / 1e6:.0f} MB")
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks(range(len(tools)), tools, rotation=15)
        ax.set_title(f"{way} (MB/s, median wall time)")
        ax.legend(fontsize=8)
    fig.suptitle("model-safety vs peers, SeaweedFS on loopback")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(text: str, data: dict, *, quiet: bool = False) -> Path:
    stem = f"{dt.date.today().isoformat()}-{socket.gethostname()}"
    RESULTS.mkdir(exist_ok=True)
    png = RESULTS / f"{stem}.png"
    plot(data, png)
    shutil.copyfile(png, DOCS_PNG) if DOCS_PNG.parent.is_dir() else None
    md = RESULTS / f"{stem}.md"
    md.write_text(text + f"\n![throughput per tool]({png.name})\n")
    if not quiet:
        print(f"wrote {md} and {png}")
    return md
