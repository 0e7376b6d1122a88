"""Find the tensors in a loaded checkpoint: iterative, each object visited once, bounded.

A pickle can share one object many times (``t = (t, t)`` sixty times is 912 bytes and 2**60
paths) or nest 200,000 levels deep; a recursive walk hangs or overflows the stack on either.
Here every container is entered once (the first path names what it holds), and depth and the
number of objects are capped: past a cap the walk stops with ``WalkLimit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

MAX_DEPTH = 1000
MAX_OBJECTS = 5_000_000


class WalkLimit(Exception):
    """The object is nested deeper, or holds more objects, than any state dict does."""


def tensors_in(
    obj: Any,
    is_tensor: Callable[[Any], bool],
    *,
    max_depth: int = MAX_DEPTH,
    max_objects: int = MAX_OBJECTS,
) -> Iterator[tuple[str, Any]]:
    """(dotted name, tensor) for every tensor reachable through dicts, lists, tuples and sets;
    other leaves (a learning rate, an epoch number) are skipped. A tensor reachable by several
    paths is reported once, under the first."""
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("", obj, 0)]
    visited = 0
    while stack:
        name, value, depth = stack.pop()
        if id(value) in seen:
            continue
        visited += 1
        if visited > max_objects:
            raise WalkLimit(f"holds more than {max_objects} objects")
        if is_tensor(value):
            seen.add(id(value))
            yield name or "<root>", value
            continue
        if isinstance(value, Mapping):
            children = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list | tuple | set | frozenset):
            children = [(str(i), v) for i, v in enumerate(value)]
        else:
            continue
        seen.add(id(value))
        if depth >= max_depth:
            raise WalkLimit(f"is nested more than {max_depth} levels deep")
        # reversed so that the stack pops children in their own order
        for key, child in reversed(children):
            stack.append((f"{name}.{key}" if name else key, child, depth + 1))
