"""The corpus table for docs/SECURITY.md: ``python -m tests.checks.report`` builds the corpus
in a temp dir, runs the checker on every case, and prints a markdown table (case, category,
verdict, reason, wall time and the checker's peak RSS)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from agent.checks.runner import check_file
from tests.checks.corpus import build


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cases = build(Path(tmp))
        print("| case | category | size | verdict | reason | time | checker peak RSS |")
        print("|---|---|---|---|---|---|---|")
        for c in cases:
            path = Path(tmp) / c.name
            v = check_file(path)
            verdict = "pass" if v.ok else "**refused**"
            rss = f"{v.peak_rss_mb:.0f} MiB" if v.peak_rss_mb else "— (gate)"
            reason = (v.reason or "").replace("|", "\\|")
            size = path.stat().st_size
            print(
                f"| `{c.name}` | {c.category} | {size:,} B | {verdict} | {reason} | "
                f"{v.seconds:.2f} s | {rss} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
