"""The agent's error family and the process exit codes (documented in docs/local.md).

Every error the CLI can report on purpose carries its exit code and a message of one or two lines
that says what to do; the CLI prints it to stderr without a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PROBLEMS = 3  # verify found corrupted or missing copies, status has warnings that matter
EXIT_LOCKED = 4  # another model-safety process holds the lock on this models dir
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT, as shells report it


class AgentError(Exception):
    """An error with a message meant for the user."""

    exit_code = EXIT_ERROR


class ConfigError(AgentError, ValueError):
    """config.yaml is missing, unreadable or wrong; the message names the key or path."""


class ModelFileError(AgentError):
    """A model or companion file is missing, empty, not a file, or unreadable."""


class NotEnoughSpace(AgentError):
    """A copy would drop free space under the configured minimum; nothing was written."""


class NothingToRestore(AgentError):
    """No intact copy matches the requested source."""


class LockHeld(AgentError):
    """Another process holds the lock on the models dir."""

    exit_code = EXIT_LOCKED


class DamagedCopy(AgentError):
    """Bytes received from a remote failed their checksum: they were not put in place."""

    exit_code = EXIT_PROBLEMS


class CheckFailed(AgentError):
    """A checkpoint failed the check (unsafe to load, NaN, damaged): it was not copied where it
    would replace a good copy."""

    exit_code = EXIT_PROBLEMS
