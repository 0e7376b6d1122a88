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
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)


@contextmanager
def warmed_up(store: Store) -> Iterator[None]:
    """Before the remotes are opened: hash the current files' new content in the background
    and, when the checker will judge some, start its child now (agent.checks.spare), so that
    torch is imported while the remote is opened and the file hashed, not after. A spare no
    check took is killed on the way out, whatever happened meanwhile."""
    from agent.checks import spare
    from agent.checks.verdicts import judged

    if any(judged(store, path.name) for path in store.warm_up()):
        spare.start()
    try:
        yield
    finally:
        spare.drop()


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

    def planned(self) -> None:
        """The push's plan is made: a spare checker child nothing was handed to is not needed
        (the new bytes were content judged before)."""
        if not self._pending:
            from agent.checks import spare

            spare.drop()

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
        from agent.checks import spare

        spare.drop()
        if self._pool is not None:
            # a check not yet started is not needed any more; one running ends on its own limits
            self._pool.shutdown(wait=False, cancel_futures=True)
