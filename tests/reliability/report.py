"""Render the fault ledger of the last reliability run as the matrix in docs/RELIABILITY.md.

    MS_RELIABILITY_REPORT=/tmp/rel.json .venv/bin/pytest tests/reliability
    .venv/bin/python -m tests.reliability.report /tmp/rel.json

Without an argument it reads the ledger pytest wrote to its cache dir
(.pytest_cache/d/reliability/last-run.json). Only the block between the ``matrix:start`` and
``matrix:end`` markers is rewritten; the rest of the document is left as written.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from tests.reliability.ledger import load

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "RELIABILITY.md"
DEFAULT_JSON = ROOT / ".pytest_cache" / "d" / "reliability" / "last-run.json"
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"

# test module -> section title, in the order the document shows them
SECTIONS = {
    "test_crash": "kill -9 at exact steps",
    "test_crash_transfer": "kill -9 in the middle of a transfer",
    "test_wire_faults": "Transient faults on the wire",
    "test_permanent_faults": "Permanent faults",
    "test_disk_full": "Disk full",
    "test_corruption": "Corruption of copies and catalogs",
    "test_healing": "Healing by content",
    "test_delta": "Delta pushes",
    "test_checked_transfers": "Checks during transfers",
    "test_corrupt_journals": "Corruption of resume journals",
    "test_concurrency": "Concurrency",
    "test_clock": "Clock trouble",
    "test_hostile_remotes": "Hostile remotes",
    "test_security": "Secrets",
    "test_directory_models": "Models saved as directories",
    "test_compression": "Compressed versions",
}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _module(test: str) -> str:
    return Path(test.split("::")[0]).stem


def render(doc: dict) -> str:
    totals = doc["totals"]
    cases = doc["cases"]
    lines = [
        f"Last run: {doc.get('generated', 'unknown')}; "
        f"**{totals['cases']} fault scenarios, {totals['passed']} passed, "
        f"{totals['failed']} failed**"
        + (f", in {doc['seconds']:.0f} s." if doc.get("seconds") else "."),
        "",
        "| Faults injected | Transfers completed afterwards | Bytes lost |",
        "|---:|---:|---:|",
        f"| {totals['faults_injected']} | {totals['transfers_completed']} | "
        f"{totals['bytes_lost']} |",
        "",
    ]
    if totals.get("cases_without_loss_check"):
        lines += [f"({totals['cases_without_loss_check']} rows do not measure lost bytes.)", ""]
    order = list(SECTIONS)
    modules = sorted(
        {_module(c["test"]) for c in cases},
        key=lambda m: (order.index(m) if m in order else len(order), m),
    )
    for module in modules:
        # by test (the rows of one test in the order it recorded them): the same matrix whatever
        # order the workers of a parallel run finished in
        rows = sorted((c for c in cases if _module(c["test"]) == module), key=lambda c: c["test"])
        lines += [
            f"#### {SECTIONS.get(module, module)} (`tests/reliability/{module}.py`)",
            "",
            "| Fault | Where injected | What the user sees | What was verified | Result |",
            "|---|---|---|---|---|",
        ]
        for c in rows:
            result = "pass" if c["status"] == "passed" else f"**{c['status'].upper()}**"
            if c.get("lost_bytes"):
                result += f", {c['lost_bytes']} bytes lost"
            verified = c["verified"] or c.get("error", "")
            lines.append(
                "| "
                + " | ".join(
                    _cell(x) for x in (c["fault"], c["where"], c["user_sees"], verified, result)
                )
                + " |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def rewrite(doc_path: Path, block: str) -> None:
    """Replace the marked block; atomic (temp in the same dir, fsync, rename)."""
    text = doc_path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc_path}: the {START} / {END} markers are missing")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{block}{END}{tail}"
    tmp = doc_path.with_name(f".{doc_path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(new)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, doc_path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else DEFAULT_JSON
    if not source.is_file():
        print(f"no ledger at {source}; run the suite first (see the module docstring)")
        return 1
    doc = load(source)
    doc.setdefault(
        "generated",
        dt.datetime.fromtimestamp(source.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    rewrite(DOC, render(doc))
    t = doc["totals"]
    print(
        f"{DOC}: {t['cases']} rows, {t['faults_injected']} faults, "
        f"{t['transfers_completed']} transfers, {t['bytes_lost']} bytes lost"
    )
    return 0 if t["failed"] == 0 else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
