"""The portability lane's interpreter hook (tests only): with MODEL_SAFETY_TEST_NO_POSIX=1 in
the environment and this directory on PYTHONPATH, Python imports this module at startup, before
any other code runs, and it takes away the POSIX-only APIs model-safety has fallbacks for, so
that the fallbacks are the code that runs:

- ``fcntl`` cannot be imported (Windows has none: filelock then picks its own lock);
- ``os.pwrite``, ``os.pread``, ``os.preadv``, ``os.pwritev`` (Windows has none);
- ``os.posix_fallocate`` (macOS and Windows have none);
- ``os.fdatasync`` (macOS has none);
- ``os.O_DIRECTORY`` (Windows has none: no directory fsync);
- ``os.O_DIRECT`` (macOS and Windows have none: downloads write through the page cache);
- ``os.copy_file_range`` (Linux only: copies then go through user space).

``pytest --portability`` sets both for the test process and every process it starts (the CLI,
workers, the checker's children). Other platform differences (path rules, case, device names)
are tested directly, not emulated here.
"""

from __future__ import annotations

import os
import sys
import warnings

ENV = "MODEL_SAFETY_TEST_NO_POSIX"
REMOVED_MODULES = ("fcntl",)
REMOVED_OS = (
    "pwrite",
    "pread",
    "preadv",
    "pwritev",
    "posix_fallocate",
    "fdatasync",
    "O_DIRECTORY",
    "O_DIRECT",
    "copy_file_range",
)


def strip() -> None:
    # filelock warns, once, that without flock or msvcrt only its soft lock is left: expected
    # here, and it would add a line to the stderr that tests read
    warnings.filterwarnings("ignore", "only soft file lock is available", UserWarning)
    for name in REMOVED_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]  # import now raises ImportError
    for name in REMOVED_OS:
        if hasattr(os, name):
            delattr(os, name)


if os.environ.get(ENV) == "1":
    strip()
