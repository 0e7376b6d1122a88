"""Reading a GET's body into a caller's buffer with one copy.

botocore's ``StreamingBody.readinto`` goes through urllib3, whose ``readinto`` is a ``read(amt)``
(http.client allocates a bytearray, reads into it and copies it into new bytes) followed by a copy
into the caller's buffer: three copies of every byte, and two temporary buffers of the request's
size per thread. Where the stack underneath is the usual one (botocore -> urllib3 -> http.client,
a body with a Content-Length, not chunked) :class:`BodyReader` reads straight from http.client's
response into the caller's buffer: the socket's bytes copied once. botocore asks urllib3 not to
decode the body, so the bytes are the same either way. Anything else goes through
``StreamingBody.readinto``.

Reading past urllib3 skips its bookkeeping, so :meth:`BodyReader.finish` hands the connection
back to the pool once http.client has seen the whole body (what urllib3 does itself at the end
of a body), and the caller checks the length it was promised.
"""

from __future__ import annotations

import http.client
from typing import Any

from providers.errors import TransientError


class BodyReader:
    def __init__(self, body: Any) -> None:
        self.body = body
        self._raw = getattr(body, "_raw_stream", None)
        fp = getattr(self._raw, "_fp", None)
        usual = (
            isinstance(fp, http.client.HTTPResponse)
            and not fp.chunked
            and fp.length is not None
            and hasattr(self._raw, "release_conn")
        )
        self._fp: http.client.HTTPResponse | None = fp if usual else None

    def fill(self, view: memoryview) -> int:
        """Read into ``view`` until it is full or the body ends; the bytes read."""
        total = 0
        read = self.body.readinto if self._fp is None else self._fp.readinto
        try:
            while total < len(view):
                n = read(view[total:])
                if not n:
                    break
                total += n
        except (ConnectionError, TimeoutError):
            raise  # the error table's to name (transient)
        except (OSError, http.client.HTTPException) as exc:
            if self._fp is None:
                raise
            raise TransientError(f"network error: {exc}") from exc
        return total

    def finish(self) -> None:
        """After the whole body was read: its connection goes back to the pool for the next GET
        (a body read only in part is closed instead)."""
        if self._fp is None:
            return
        if self._fp.isclosed():
            self._raw.release_conn()
        else:
            self.body.close()
