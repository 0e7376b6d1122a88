"""The one retry layer: a Provider that wraps another and retries
TransientError only, with exponential backoff and jitter, bounded by attempts and total time.

Backends do not retry on their own (S3 sets botocore to a single attempt), so attempts never
multiply across layers. A retried ``put`` / ``get`` is called again from the top with the same
paths: it reopens its input, and backends that keep journals resume instead of starting over.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import tenacity

from providers.base import (
    STREAM_CHUNK,
    BeforeCommitFn,
    Capabilities,
    IterBytesFn,
    ObjectInfo,
    ProgressFn,
    Provider,
)
from providers.config import RETRY_KEYS, unknown_key_problem
from providers.errors import ConfigError, TransientError
from providers.ranges import RangeHashes

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry settings, from a remote's ``retry:`` mapping (all keys optional).

    attempts: total tries per operation (1 = no retry); max_delay: give up starting new attempts
    after this many seconds in total; initial_wait / max_wait: exponential backoff bounds in
    seconds; jitter: up to this many random seconds added to each wait. ``no_wait()`` keeps the
    attempts but sleeps zero, for tests."""

    attempts: int = 5
    max_delay: float = 300.0
    initial_wait: float = 1.0
    max_wait: float = 30.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"retry.attempts must be >= 1, got {self.attempts}")
        for f in ("max_delay", "initial_wait", "max_wait", "jitter"):
            if getattr(self, f) < 0:
                raise ConfigError(f"retry.{f} must be >= 0, got {getattr(self, f)}")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RetryPolicy:
        problem = unknown_key_problem(settings, RETRY_KEYS)
        if problem:
            raise ConfigError(f"retry: {problem}")
        try:
            values = {k: (int(v) if k == "attempts" else float(v)) for k, v in settings.items()}
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"retry settings must be numbers: {dict(settings)}") from exc
        return cls(**values)

    def no_wait(self) -> RetryPolicy:
        return dataclasses.replace(self, initial_wait=0.0, max_wait=0.0, jitter=0.0)

    def retrying(self, what: str) -> tenacity.Retrying:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            # Provider error messages never hold secrets (keys and tokens stay in the SDK config).
            log.warning(
                "%s failed (attempt %d of %d), retrying in %.1fs: %s",
                what,
                state.attempt_number,
                self.attempts,
                state.upcoming_sleep,
                exc,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            stop=tenacity.stop_after_attempt(self.attempts)
            | tenacity.stop_after_delay(self.max_delay),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.initial_wait, max=self.max_wait, jitter=self.jitter
            ),
            before_sleep=before_sleep,
            reraise=True,
        )


class RetryingProvider:
    """Proxies every Provider operation through ``policy``, the optional ones included: its
    ``capabilities`` are the inner provider's with each present operation wrapped, so callers
    never need the inner provider."""

    def __init__(self, provider: Provider, policy: RetryPolicy | None = None) -> None:
        self.inner = provider
        self.policy = policy or RetryPolicy()
        self.name = provider.name
        self.capabilities: Capabilities = provider.capabilities.wrap(self._retried)

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.policy.retrying(f"{self.name}: {what}")(fn, *args, **kwargs)

    def _retried(self, name: str, op: Callable[..., Any]) -> Callable[..., Any]:
        if name == "iter_bytes":
            return functools.partial(_resumed_stream, self._call, op)

        @functools.wraps(op)
        def retried(*args: Any, **kwargs: Any) -> Any:
            # PreconditionFailed (a lost put_bytes race) is not transient: reported at once.
            what = " ".join([name, " -> ".join(a for a in args if isinstance(a, str))]).strip()
            return self._call(what, op, *args, **kwargs)

        return retried

    def put(
        self,
        key: str,
        src_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        before_commit: BeforeCommitFn | None = None,
    ) -> ObjectInfo:
        return self._call(
            f"put {key}",
            self.inner.put,
            key,
            src_path,
            expected_hashes=expected_hashes,
            progress=progress,
            before_commit=before_commit,
        )

    def get(
        self,
        key: str,
        dest_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        expected_ranges: RangeHashes | None = None,
    ) -> ObjectInfo:
        ranges = {"expected_ranges": expected_ranges} if expected_ranges is not None else {}
        return self._call(
            f"get {key}",
            self.inner.get,
            key,
            dest_path,
            expected_hashes=expected_hashes,
            progress=progress,
            **ranges,
        )

    def stat(self, key: str) -> ObjectInfo:
        return self._call(f"stat {key}", self.inner.stat, key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Listing is materialised inside the retry so a failure on page 3 retries the whole
        # listing instead of surfacing halfway through the caller's loop.
        return iter(self._call(f"list {prefix!r}", lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> None:
        self._call(f"delete {key}", self.inner.delete, key)

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"RetryingProvider({self.inner!r}, {self.policy!r})"


def _resumed_stream(
    call: Callable[..., Any],
    inner: IterBytesFn,
    key: str,
    *,
    chunk_size: int = STREAM_CHUNK,
    progress: ProgressFn | None = None,
    start: int = 0,
) -> Iterator[bytes]:
    """Streaming reads. The retried unit is one chunk, not the whole stream: a transient error
    mid-stream reopens it at the byte offset already yielded (the contract's ``start``), so the
    caller sees every byte exactly once, in order. ``progress`` is reported here, as chunks reach
    the caller, so it adds up to the object's size however often a stream broke. The attempt
    budget applies per chunk: a chunk that arrives resets it, so a long download over a flaky
    link finishes while a dead one still fails after ``attempts`` tries. An object replaced
    between a failure and the reopen yields mixed bytes; the caller's hash check reports that as
    a mismatch, never as a match."""
    offset = start  # bytes yielded to the caller so far
    stream: Iterator[bytes] | None = None

    def next_chunk() -> bytes | None:
        nonlocal stream
        try:
            if stream is None:
                at = {"start": offset} if offset else {}
                stream = iter(inner(key, chunk_size=chunk_size, **at))
            return next(stream, None)
        except BaseException:
            _close(stream)
            stream = None  # a generator that raised is done: reopen on the next try
            raise

    try:
        while (chunk := call(f"read {key}", next_chunk)) is not None:
            offset += len(chunk)
            if progress is not None:
                progress(len(chunk))
            yield chunk
    finally:
        _close(stream)  # releases the connection when the caller stops early


def _close(stream: Iterator[bytes] | None) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()
