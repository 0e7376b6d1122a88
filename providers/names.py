"""Names that can exist on every platform we run on. Pure, no I/O.

A name that is fine on Linux may be no file at all on Windows: ``CON``, ``NUL``, ``COM1`` (with
any extension: ``nul.pth``) open a device; a trailing dot or space is silently dropped, so
``model.pth.`` is ``model.pth``; ``:`` opens an alternate data stream of another file, and
``< > " | ? *`` and control characters are refused. Remote names and keys are checked against
these rules on every platform, so a remote filled on Linux can always be pulled on Windows and
a hostile remote cannot aim a name at a device or a stream.
"""

from __future__ import annotations

_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
_NUMBERED = {f"{p}{n}" for p in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")}
RESERVED = frozenset(_DEVICES | _NUMBERED)
_REFUSED = frozenset('<>:"|?*') | frozenset(chr(c) for c in range(32))


def portable_name_problem(name: str) -> str | None:
    """Why ``name`` (one path segment) cannot be a file on every platform, or None if it can."""
    device = name.split(".", 1)[0].rstrip(" ").upper()
    if device in RESERVED:
        return f"{device} is a reserved device name on Windows"
    if name.endswith((".", " ")) and name not in (".", ".."):
        return "ends with a dot or a space, which Windows drops"
    bad = sorted({c for c in name if c in _REFUSED})
    if bad:
        return f"contains {', '.join(repr(c) for c in bad)}, which Windows refuses in file names"
    return None


def same_name_key(name: str) -> str:
    """What two names are compared by where a file system ignores case (Windows, macOS by
    default): names equal under this key are one file there."""
    return name.casefold()
