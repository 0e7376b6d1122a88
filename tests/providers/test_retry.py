"""The retry layer over a real local provider whose directory misbehaves on purpose: a small
subclass that fails its first calls with chosen errors (no mocking library, no SDK mocks)."""

from __future__ import annotations

import logging

import pytest

from providers.errors import ConfigError, NotFound, PermissionDenied, TransientError
from providers.local import LocalProvider
from providers.retry import RetryingProvider, RetryPolicy
from tests.providers.helpers import FAST, Minimal


class Flaky(LocalProvider):
    """Fails the next ``len(errors)`` calls of put/get/stat with the given errors, in order."""

    def __init__(self, *args, errors=(), **kw):
        super().__init__(*args, **kw)
        self.errors = list(errors)
        self.calls = 0

    def _maybe_fail(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    def put(self, key, src_path, **kw):
        self._maybe_fail()
        return super().put(key, src_path, **kw)

    def stat(self, key):
        self._maybe_fail()
        return super().stat(key)


def flaky(tmp_path, *errors):
    root = tmp_path / "remote"
    root.mkdir()
    return Flaky("flaky", root, errors=errors)


def test_transient_errors_are_retried_until_success(tmp_path, caplog):
    inner = flaky(tmp_path, TransientError("reset"), TransientError("503 SlowDown"))
    remote = RetryingProvider(inner, FAST)
    src = tmp_path / "f"
    src.write_bytes(b"abc")
    with caplog.at_level(logging.WARNING, logger="providers.retry"):
        info = remote.put("k", src)
    assert info.size == 3
    assert inner.calls == 3
    assert "put k failed (attempt 1 of 4)" in caplog.text


def test_attempts_are_bounded_and_the_last_error_is_raised(tmp_path):
    inner = flaky(tmp_path, *[TransientError(f"fail {i}") for i in range(10)])
    with pytest.raises(TransientError, match="fail 3"):
        RetryingProvider(inner, FAST).stat("k")
    assert inner.calls == 4


@pytest.mark.parametrize("error", [PermissionDenied("bad key"), NotFound("gone"), ValueError("x")])
def test_permanent_errors_fail_at_once(tmp_path, error):
    inner = flaky(tmp_path, error)
    with pytest.raises(type(error)):
        RetryingProvider(inner, FAST).stat("k")
    assert inner.calls == 1


def test_optional_operations_follow_the_inner_provider(tmp_path):
    full = RetryingProvider(flaky(tmp_path), FAST)
    assert full.capabilities.copy is not None and full.capabilities.small_objects
    bare = RetryingProvider(Minimal(), FAST)
    assert bare.capabilities.copy is None
    assert not bare.capabilities.small_objects
    assert bare.name == "minimal"


def test_policy_from_settings():
    policy = RetryPolicy.from_settings({"attempts": 3, "max_delay": "60", "jitter": 0})
    assert (policy.attempts, policy.max_delay, policy.jitter) == (3, 60.0, 0.0)
    with pytest.raises(ConfigError, match="did you mean 'attempts'"):
        RetryPolicy.from_settings({"attempt": 3})
    with pytest.raises(ConfigError):
        RetryPolicy.from_settings({"attempts": 0})
    assert RetryPolicy().no_wait().initial_wait == 0


def test_retry_keys_checked_at_config_load_are_the_policy_fields():
    import dataclasses

    from providers.config import RETRY_KEYS

    assert set(RETRY_KEYS) == {f.name for f in dataclasses.fields(RetryPolicy)}
