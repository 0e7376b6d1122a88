"""A separate process that uploads (or downloads) one file through ``open_provider``, for kill -9
resume tests of any backend (S3 on SeaweedFS, gdrive on the emulator).

Usage: python -m tests.providers.upload_worker SETTINGS_JSON KEY SRC STATE_DIR [PAUSE_AFTER]
       python -m tests.providers.upload_worker get SETTINGS_JSON KEY DEST STATE_DIR [PAUSE_AFTER]
       python -m tests.providers.upload_worker delta REUSE_JSON SETTINGS_JSON KEY SRC STATE_DIR
       [PAUSE_AFTER]  (``put_reusing``; REUSE_JSON: the Reuse's fields, ranges as a list;
       prints ``copied <bytes>`` before ``done``)

Prints ``progress <total>`` after every progress callback and ``done <total> <sha256>`` at the
end (total = bytes this process reported as sent, or received). With PAUSE_AFTER (bytes), the
progress callback prints ``paused <total>`` and blocks forever once that many bytes were reported,
so the test can ``kill -9`` the process at a known point instead of racing it.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from providers import open_provider
from providers.base import Reuse


def main(argv: list[str]) -> int:
    download = argv[0] == "get"
    reuse = None
    if download:
        argv = argv[1:]
    elif argv[0] == "delta":
        fields = json.loads(argv[1])
        reuse = Reuse(**{**fields, "ranges": frozenset(fields["ranges"])})
        argv = argv[2:]
    settings = json.loads(argv[0])
    key, src, state_dir = argv[1], Path(argv[2]), Path(argv[3])
    pause_after = int(argv[4]) if len(argv) > 4 else None
    lock = threading.Lock()
    total = 0
    blocked = threading.Event()

    def progress(delta: int) -> None:
        nonlocal total
        with lock:
            total += delta
            print(f"progress {total}", flush=True)
            pause = pause_after is not None and total >= pause_after
            if pause and not blocked.is_set():
                blocked.set()
                print(f"paused {total}", flush=True)
        if pause:
            threading.Event().wait()  # until kill -9

    provider = open_provider("worker", settings, state_dir=state_dir)
    try:
        if download:
            info = provider.get(key, src, progress=progress)
        elif reuse is not None:
            assert provider.capabilities.put_reusing is not None
            info, copied = provider.capabilities.put_reusing(key, src, reuse, progress=progress)
            print(f"copied {copied}", flush=True)
        else:
            info = provider.put(key, src, progress=progress)
    finally:
        provider.close()
    print(f"done {total} {info.hashes.get('sha256', '')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
