"""Subprocess worker for kill -9 resume tests: uploads one file through ``open_provider``.

Usage: python -m tests.providers.gdrive_worker SETTINGS_JSON KEY SRC STATE_DIR [PAUSE_AFTER]

Prints ``progress <total bytes>`` after every chunk and ``done <md5>`` at the end. With
PAUSE_AFTER, once that many bytes are confirmed by the server it prints ``paused`` and blocks
reading stdin, so the test can ``kill -9`` it at a known point without sleeping or racing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from providers import open_provider


def main(argv: list[str]) -> int:
    settings = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    key, src, state_dir = argv[1], Path(argv[2]), Path(argv[3])
    pause_after = int(argv[4]) if len(argv) > 4 else None
    total = 0

    def progress(delta: int) -> None:
        nonlocal total
        total += delta
        print(f"progress {total}", flush=True)
        if pause_after is not None and total >= pause_after:
            print("paused", flush=True)
            sys.stdin.readline()  # the test kills us here

    provider = open_provider("worker", settings, state_dir=state_dir)
    info = provider.put(key, src, progress=progress)
    print(f"done {info.hashes.get('md5')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
