"""The hard limits of one check, scaled by what the file really holds.

A few-KB file gets a few hundred MB and a few seconds of CPU beyond what importing torch costs;
a real checkpoint gets room to map itself (``mmap=True``) plus one copy of its largest part, and
CPU time for one pass over its bytes at a pessimistic speed. The child applies the memory limit
after importing torch, relative to its own size then, so a larger torch build never turns every
check into a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
BASE_MEMORY = 256 * MiB  # what a tiny file may allocate beyond the checker itself
BASE_CPU_SECONDS = 20  # importing torch takes 1-3 s of CPU here; the rest is for the file
SLOWEST_BYTES_PER_CPU_SECOND = 20 * MiB  # a finite pass runs at 300+ MB/s; this is 15x slack
WALL_FACTOR = 3  # a busy machine stretches wall time, not CPU time
WALL_EXTRA_SECONDS = 60


@dataclass(frozen=True)
class Limits:
    memory_bytes: int  # address space the file may add to the checker's own
    cpu_seconds: int
    wall_seconds: int

    def describe_memory(self) -> str:
        return _size(self.memory_bytes)


def for_size(size: int) -> Limits:
    # mmap of the whole file, plus one tensor copied out (safetensors, a legacy file, a byte swap)
    memory = BASE_MEMORY + 2 * size
    cpu = BASE_CPU_SECONDS + size // SLOWEST_BYTES_PER_CPU_SECOND
    return Limits(memory, cpu, cpu * WALL_FACTOR + WALL_EXTRA_SECONDS)


def _size(n: int) -> str:
    for unit, div in (("GiB", 1024**3), ("MiB", MiB)):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n} bytes"
