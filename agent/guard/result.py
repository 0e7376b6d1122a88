"""What a guarded update ended with (GuardResult, its outcomes and exit codes), the exception the
Python API raises for a rejected update, and the signal shield a rollback runs under."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEMS, AgentError
from agent.signals import handled

if TYPE_CHECKING:
    from agent.validation.validate import ValidationResult

ACCEPTED = "accepted"  # changed and validated: the new model stays
UNCHANGED = "unchanged"  # the update left the model as it was
ROLLED_BACK = "rolled-back"  # rejected: the previous model is back
NOT_CHANGED_FAILED = "update-failed"  # the update failed before touching the model
INTERRUPTED = "interrupted"


class UpdateRejected(AgentError):
    """A guarded update was rolled back; ``result`` says why and where the rejected model is."""

    exit_code = EXIT_PROBLEMS

    def __init__(self, result: GuardResult) -> None:
        super().__init__(result.message)
        self.result = result


@dataclass
class GuardResult:
    model: str
    outcome: str
    message: str
    backup: str | None = None  # the copy a rollback restores from
    version: str | None = None  # the dated version made after a pass
    kept_aside: tuple[str, ...] = ()
    command_exit: int | None = None
    validation: ValidationResult | None = None
    warnings: list[str] = field(default_factory=list)
    could_not_validate: bool = False

    @property
    def exit_code(self) -> int:
        if self.outcome == INTERRUPTED:
            return EXIT_INTERRUPTED
        if self.could_not_validate:
            return EXIT_ERROR
        return EXIT_OK if self.outcome in (ACCEPTED, UNCHANGED) else EXIT_PROBLEMS

    @property
    def score(self) -> float | None:
        return self.validation.score if self.validation is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "outcome": self.outcome,
            "message": self.message,
            "backup": self.backup,
            "version": self.version,
            "kept_aside": list(self.kept_aside),
            "command_exit": self.command_exit,
            "score": self.score,
            "validation": self.validation.to_dict() if self.validation is not None else None,
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


@contextmanager
def signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not cut a rollback short: each step is atomic, but the rollback as a
    whole should finish and say where everything is."""
    with handled(signal.SIG_IGN):
        yield
