"""What a push did, for the user and for ``--json``: per file, the bytes sent and the bytes
copied on the remote (a server-side copy, or the reused ranges of a delta upload)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.progress import human_size
from agent.rules.push_plan import Step
from agent.rules.retention import Decision


@dataclass
class SyncReport:
    remote: str
    steps: list[Step] = field(default_factory=list)
    done: list[str] = field(default_factory=list)  # one line per action carried out
    problems: list[str] = field(default_factory=list)
    files: int = 0
    bytes_sent: int = 0  # over the wire by this run
    bytes_resumed: int = 0  # already on the server from an interrupted earlier upload
    bytes_copied: int = 0  # server-side
    # per file carried out: name, action, bytes sent, bytes copied on the remote, source
    transfers: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    decisions: list[Decision] = field(default_factory=list)
    # told each `done` line as it happens (the daemon stamps its log lines with the time)
    on_line: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def did(self, line: str) -> None:
        self.done.append(line)
        if self.on_line is not None:
            self.on_line(line)

    def summary(self) -> str:
        return (
            f"{self.remote}: {self.files} file(s), {human_size(self.bytes_sent)} sent, "
            + (
                f"{human_size(self.bytes_resumed)} resumed from an earlier upload, "
                if self.bytes_resumed
                else ""
            )
            + f"{human_size(self.bytes_copied)} copied server-side, {self.seconds:.1f}s"
            + (f", {len(self.problems)} problem(s)" if self.problems else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "steps": [
                {"action": s.action.value, "name": s.name, "size": s.size, "reason": s.reason}
                | ({"source": s.source} if s.source else {})
                | (_delta_plan(s) if s.reuse else {})
                for s in self.steps
            ],
            "transfers": self.transfers,
            "done": self.done,
            "problems": self.problems,
            "files": self.files,
            "bytes_sent": self.bytes_sent,
            "bytes_resumed": self.bytes_resumed,
            "bytes_copied": self.bytes_copied,
            "seconds": round(self.seconds, 3),
            "prune": [d.to_dict() for d in self.decisions],
        }


def _delta_plan(step: Step) -> dict[str, Any]:
    assert step.reuse is not None
    r = step.reuse
    return {
        "delta": {
            "source": r.name,
            "ranges_copied": len(r.ranges),
            "ranges": r.ranges_total,
            "bytes_copied": r.bytes_reused,
            "bytes_sent": step.size - r.bytes_reused,
        }
    }


def moved(step: Step, sent: int, copied: int, source: str | None) -> dict[str, Any]:
    return {"name": step.name, "action": step.action.value, "bytes_sent": sent,
            "bytes_copied": copied, "source": source}  # fmt: skip
