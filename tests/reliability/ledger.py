"""The fault ledger: every reliability test records the fault it injected, where, what the user
saw and what was checked afterwards, with the figures (faults injected, transfers completed,
bytes lost). The session's rows become the matrix in docs/RELIABILITY.md (see report.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Case:
    fault: str
    where: str
    user_sees: str
    test: str = ""
    verified: str = ""
    faults_injected: int = 1
    transfers_completed: int = 0
    # None until the test computed it: a row that never measured its losses is not "0 lost".
    lost_bytes: int | None = None
    status: str = "running"
    error: str = ""


@dataclass
class Ledger:
    cases: list[Case] = field(default_factory=list)

    @contextmanager
    def case(self, fault: str, where: str, user_sees: str, *, test: str = "") -> Iterator[Case]:
        """Record one fault. An exception inside the block marks the row failed and re-raises;
        a block that ends without setting ``verified`` is a test bug and fails too."""
        row = Case(fault=fault, where=where, user_sees=user_sees, test=test)
        self.cases.append(row)
        try:
            yield row
        except BaseException as exc:
            row.status = "failed"
            row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            raise
        if not row.verified:
            row.status = "failed"
            raise AssertionError(f"ledger case {fault!r} says nothing about what was verified")
        row.status = "passed"

    def totals(self) -> dict[str, int]:
        measured = [c.lost_bytes for c in self.cases if c.lost_bytes is not None]
        return {
            "cases": len(self.cases),
            "passed": sum(c.status == "passed" for c in self.cases),
            "failed": sum(c.status != "passed" for c in self.cases),
            "faults_injected": sum(c.faults_injected for c in self.cases),
            "transfers_completed": sum(c.transfers_completed for c in self.cases),
            "bytes_lost": sum(measured),
            "cases_without_loss_check": len(self.cases) - len(measured),
        }

    def to_dict(self) -> dict:
        return {"totals": self.totals(), "cases": [asdict(c) for c in self.cases]}

    def write(self, path: Path, **extra: object) -> None:
        """Atomic write of the JSON report (temp in the same dir, fsync, rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w") as fh:
                json.dump({**extra, **self.to_dict()}, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def said(output: str, *roots: Path | str, limit: int = 100) -> str:
    """The first telling line of a command's output, for a ledger row: the 'took over a stale
    lock' warning every command prints after a kill is skipped, test dirs become <dir>."""
    for line in output.splitlines():
        line = line.strip()
        if not line or "took over a stale lock" in line:
            continue
        for root in roots:
            line = line.replace(str(root), "<dir>")
        return line if len(line) <= limit else line[: limit - 1].rsplit(" ", 1)[0] + " …"
    return ""
