"""The one retry layer (STYLE.md rule 2): a Provider that wraps another and retries
TransientError only, with exponential backoff and jitter, bounded by attempts and total time.

Backends do not retry on their own (S3 sets botocore to a single attempt), so attempts never
multiply across layers. A retried ``put`` / ``get`` is called again from the top with the same
paths: it reopens its input, and backends that keep journals resume instead of starting over.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import tenacity

from providers.base import Copier, ObjectInfo, ProgressFn, Provider, SmallObjects, Streamer
from providers.config import RETRY_KEYS, unknown_key_problem
from providers.errors import ConfigError, TransientError

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
    """Proxies every Provider method through ``policy``. ``RetryingProvider(p)`` picks a
    subclass so that ``isinstance(p, Copier)`` / ``isinstance(p, SmallObjects)`` /
    ``isinstance(p, Streamer)`` hold exactly when they hold for the inner provider
    (runtime_checkable protocols look for the methods)."""

    def __new__(cls, provider: Provider, policy: RetryPolicy | None = None) -> RetryingProvider:
        target = cls
        if cls is RetryingProvider:
            target = _class_for(
                isinstance(provider, Copier),
                isinstance(provider, SmallObjects),
                isinstance(provider, Streamer),
            )
        return object.__new__(target)

    def __init__(self, provider: Provider, policy: RetryPolicy | None = None) -> None:
        self.inner = provider
        self.policy = policy or RetryPolicy()
        self.name = provider.name
        self.capabilities = provider.capabilities

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.policy.retrying(f"{self.name}: {what}")(fn, *args, **kwargs)

    def put(
        self,
        key: str,
        src_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
    ) -> ObjectInfo:
        return self._call(
            f"put {key}",
            self.inner.put,
            key,
            src_path,
            expected_hashes=expected_hashes,
            progress=progress,
        )

    def get(
        self,
        key: str,
        dest_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
    ) -> ObjectInfo:
        return self._call(
            f"get {key}",
            self.inner.get,
            key,
            dest_path,
            expected_hashes=expected_hashes,
            progress=progress,
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


class _CopyMixin:
    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        return self._call(f"copy {src_key} -> {dst_key}", self.inner.copy, src_key, dst_key)  # type: ignore[attr-defined]


class _SmallMixin:
    def get_bytes(self, key: str) -> tuple[bytes, ObjectInfo]:
        return self._call(f"get_bytes {key}", self.inner.get_bytes, key)  # type: ignore[attr-defined]

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> ObjectInfo:
        # PreconditionFailed is not transient, so a lost race is reported at once, never retried.
        return self._call(  # type: ignore[attr-defined]
            f"put_bytes {key}",
            self.inner.put_bytes,  # type: ignore[attr-defined]
            key,
            data,
            if_match=if_match,
            if_none_match=if_none_match,
        )


class _StreamMixin:
    """Streaming reads. The retried unit is one chunk, not the whole stream: a transient error
    mid-stream reopens it at the byte offset already yielded (``start=``, which our backends
    accept), so the caller sees every byte exactly once, in order. ``progress`` is reported here,
    as chunks reach the caller, so it adds up to the object's size however often a stream broke.
    The attempt budget applies per chunk: a chunk that arrives resets it, so a long download over
    a flaky link finishes while a dead one still fails after ``attempts`` tries. A Streamer
    without ``start`` is reopened from byte 0 and the bytes already yielded are skipped. An
    object replaced between a failure and the reopen yields mixed bytes; the caller's hash check
    reports that as a mismatch, never as a match."""

    def iter_bytes(
        self,
        key: str,
        *,
        chunk_size: int = 8 * 1024 * 1024,
        progress: ProgressFn | None = None,
    ) -> Iterator[bytes]:
        inner = self.inner.iter_bytes  # type: ignore[attr-defined]
        call = self._call  # type: ignore[attr-defined]
        resumable = "start" in inspect.signature(inner).parameters
        offset = 0  # bytes yielded to the caller so far
        stream: Iterator[bytes] | None = None
        pending = b""  # the part past ``offset`` of a re-read chunk (non-resumable streams)

        def open_at(offset: int) -> Iterator[bytes]:
            if resumable:
                start = {"start": offset} if offset else {}
                return iter(inner(key, chunk_size=chunk_size, **start))
            nonlocal pending
            fresh = iter(inner(key, chunk_size=chunk_size))
            skip = offset
            while skip > 0:
                head = next(fresh, None)
                if head is None:
                    raise TransientError(f"read {key}: the object is shorter than before")
                pending = head[skip:]
                skip -= len(head)
            return fresh

        def next_chunk() -> bytes | None:
            nonlocal stream, pending
            try:
                if stream is None:
                    stream = open_at(offset)
                if pending:
                    chunk, pending = pending, b""
                    return chunk
                return next(stream, None)
            except BaseException:
                _close(stream)
                stream, pending = None, b""  # a generator that raised is done: reopen next try
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


@functools.cache
def _class_for(copier: bool, small: bool, streamer: bool) -> type[RetryingProvider]:
    """The RetryingProvider subclass with exactly the optional protocols of the inner provider."""
    flags = ((_CopyMixin, copier), (_SmallMixin, small), (_StreamMixin, streamer))
    mixins = [m for m, on in flags if on]
    if not mixins:
        return RetryingProvider
    name = "_Retrying" + "".join(m.__name__.strip("_").removesuffix("Mixin") for m in mixins)
    return type(name, (*mixins, RetryingProvider), {})
