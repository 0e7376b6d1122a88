"""Helpers shared by the provider tests (one home each)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from providers import Capabilities
from providers.retry import RetryPolicy

MIB = 1024 * 1024
# A remote's ``retry:`` mapping that keeps the attempts but never sleeps.
NO_WAIT = {"initial_wait": 0, "max_wait": 0, "jitter": 0}
FAST = RetryPolicy(attempts=4).no_wait()


def make_file(path: Path, size: int, seed: int = 0) -> dict[str, str]:
    """``size`` incompressible, reproducible bytes at ``path``; returns their sha256 and md5."""
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}


class Minimal:
    """A provider with only the core operations: no optional one."""

    name = "minimal"
    capabilities = Capabilities(hashes=frozenset({"sha256", "md5"}), conditional_write=True)

    def put(self, *a, **k): ...
    def get(self, *a, **k): ...
    def stat(self, key): ...
    def list(self, prefix=""):
        return iter(())

    def delete(self, key): ...
    def close(self): ...
