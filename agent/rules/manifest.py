"""The manifest of a directory copy: every file in it, by path relative to the directory, with its
size and sha256. Pure, no I/O.

A directory version is known by its manifest the way a file version is known by its sha256: the
catalog entry of ``llama-ft_v2026-11-30`` lists every file, and its one ``sha256`` is the
manifest's identity (the sha256 of the sorted ``<sha256>  <size>  <path>`` lines), so two
directories hold the same content exactly when their identities are equal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

# relative posix path -> (size, sha256)
Manifest = Mapping[str, tuple[int, str]]


def identity(manifest: Manifest) -> str:
    """The whole directory's sha256: of its sorted manifest lines."""
    lines = "".join(f"{sha}  {size}  {path}\n" for path, (size, sha) in sorted(manifest.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def total_size(manifest: Manifest) -> int:
    return sum(size for size, _ in manifest.values())


def is_safe_relative(path: str) -> bool:
    """A relative path that stays inside its directory: no absolute path, no ``..``, no empty or
    ``.`` part, no backslash or NUL (a manifest read from a remote names only such paths)."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def to_json(manifest: Manifest) -> dict[str, dict[str, object]]:
    return {p: {"size": size, "sha256": sha} for p, (size, sha) in sorted(manifest.items())}


def from_json(data: Mapping[str, Mapping[str, object]]) -> dict[str, tuple[int, str]]:
    out = {}
    for path, item in data.items():
        if not is_safe_relative(str(path)):
            raise ValueError(f"manifest path {path!r} leaves its directory")
        out[str(path)] = (int(item["size"]), str(item["sha256"]))  # type: ignore[call-overload]
    return out


@dataclass(frozen=True)
class Difference:
    """How a directory on disk differs from its manifest, per file."""

    missing: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def same(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    def problems(self, prefix: str) -> list[str]:
        """One line per file: ``<prefix>/<path>: missing|corrupted|not in the manifest``."""
        return [
            *(f"{prefix}/{p}: missing" for p in self.missing),
            *(f"{prefix}/{p}: corrupted" for p in self.changed),
            *(
                f"{prefix}/{p}: not in the manifest (added since the copy was made)"
                for p in self.extra
            ),
        ]


def compare(expected: Manifest, found: Manifest) -> Difference:
    return Difference(
        missing=tuple(sorted(set(expected) - set(found))),
        changed=tuple(sorted(p for p in expected if p in found and found[p] != expected[p])),
        extra=tuple(sorted(set(found) - set(expected))),
    )
