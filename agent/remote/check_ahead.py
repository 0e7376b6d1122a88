"""Checks that run beside the uploads. A push used to judge every new file before sending any
byte; now the checker judges a file while its bytes are already on their way, and the upload is
completed only once the verdict is in (the providers' ``before_commit``). A refused file is
aborted on the remote: nothing becomes visible under its name, and nothing is left to resume.

One checker child at a time, in push order: the file being uploaded is judged first, the next
one while this one's bytes travel. A verdict already recorded for a content is taken at once, so
only new content waits for a child.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)


class CheckRefused(Exception):
    """The file failed the check while its upload ran: the upload was abandoned."""


class CheckAhead:
    """Verdicts on the files a push sends, by sha256, judged in a background thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, Future[str | None]] = {}  # sha256 -> why it must not leave

    def start(self, name: str, sha256: str) -> None:
        """Judge ``name`` (content ``sha256``) in the background, unless that content is
        already being judged."""
        if sha256 in self._pending:
            return
        from agent.checks.verdicts import refusal

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-ahead")
        self._pending[sha256] = self._pool.submit(refusal, self.store, name, sha256)

    def pending(self, sha256: str) -> bool:
        return sha256 in self._pending

    def refusal(self, sha256: str) -> str | None:
        """Why the content must not leave (None: it may); waits for its check to finish."""
        future = self._pending.get(sha256)
        return None if future is None else future.result()

    def gate(self, sha256: str, name: str) -> None:
        """A ``before_commit`` for the upload of ``name``: returns once the check has passed,
        raises CheckRefused when it failed."""
        why = self.refusal(sha256)
        if why is not None:
            raise CheckRefused(why)
        log.debug("check of %s passed; completing its upload", name)

    def close(self) -> None:
        if self._pool is not None:
            # a check not yet started is not needed any more; one running ends on its own limits
            self._pool.shutdown(wait=False, cancel_futures=True)
