"""A small Google Drive v2 server on loopback that pydrive2 / googleapiclient talk to unmodified.

What it implements is what our provider and pydrive2 use: the service-account (JWT bearer) and
refresh-token grants on ``/token``; Bearer checks (401); files.insert / update with resumable
upload sessions (308 + ``Range``, ``bytes */N`` status queries, partial chunks kept); files.get
(metadata, ``alt=media`` with ``Range``); files.list with the ``q`` subset of drive_query.py and
paging; files.delete / trash / copy / patch; If-Match on the etag (412); md5Checksum, fileSize as a
string, properties, duplicate titles, case-insensitive ``title =``; a storage quota.

Tests steer it through ``faults`` (see FaultRule) and read ``counters``. The state lives in the
test process; clients may be subprocesses (kill -9 tests), which is why it speaks real HTTP.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization

from tests.servers.drive_handler import Handler
from tests.servers.drive_state import FOLDER_MIME, DriveFile, DriveState, FaultRule

__all__ = ["FOLDER_MIME", "DriveEmulator", "DriveFile", "DriveServer", "FaultRule"]


class DriveServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: DriveState) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state


class DriveEmulator:
    """Owns the server thread and offers the hooks tests use."""

    def __init__(self) -> None:
        self.state = DriveState()
        self.server = DriveServer(self.state)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="drive-emulator", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/"

    @property
    def token_uri(self) -> str:
        return self.url + "token"

    def start(self) -> DriveEmulator:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    # -- test hooks -------------------------------------------------------------------------
    def register_service_account(self, client_email: str, private_key_pem: bytes) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        with self.state.lock:
            self.state.public_keys[client_email] = key.public_key()

    def add_refresh_token(self, token: str) -> None:
        with self.state.lock:
            self.state.refresh_tokens.add(token)

    def inject(self, method: str, path: str, **kw: Any) -> FaultRule:
        rule = FaultRule(method, path, **kw)
        with self.state.lock:
            self.state.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def counter(self, name: str) -> int:
        with self.state.lock:
            return self.state.counters.get(name, 0)

    def reset_counters(self) -> None:
        with self.state.lock:
            self.state.counters.clear()

    def corrupt_next_uploads(self, n: int = 1) -> None:
        with self.state.lock:
            self.state.corrupt_uploads = n

    def set_quota(self, quota_bytes: int | None) -> None:
        with self.state.lock:
            self.state.quota_bytes = quota_bytes

    def create_file(
        self,
        title: str,
        data: bytes = b"",
        *,
        parent: str = "root",
        mime_type: str | None = None,
        trashed: bool = False,
    ) -> str:
        """Add a file (or folder, with mime_type FOLDER_MIME) directly, as another client would."""
        with self.state.lock:
            f = DriveFile(
                self.state.new_id(),
                title,
                mime_type or "application/octet-stream",
                [parent],
                data,
                trashed=trashed,
            )
            self.state.files[f.id] = f
            return f.id

    def create_folder(self, title: str, parent: str = "root") -> str:
        return self.create_file(title, parent=parent, mime_type=FOLDER_MIME)

    def files_in(self, folder_id: str, *, include_trashed: bool = False) -> list[DriveFile]:
        with self.state.lock:
            return sorted(
                (
                    f
                    for f in self.state.files.values()
                    if folder_id in f.parents and (include_trashed or not f.trashed)
                ),
                key=lambda f: (f.created, f.id),
            )

    def open_sessions(self) -> int:
        with self.state.lock:
            return sum(1 for s in self.state.sessions.values() if s.completed_id is None)

    def flip_byte(self, folder_id: str, title: str, offset: int) -> None:
        """Bit rot behind the client's back: flip one byte of a stored file's content (Drive then
        reports the new content's md5Checksum, as it would for a changed file)."""
        with self.state.lock:
            (f,) = [x for x in self.files_in(folder_id) if x.title == title]
            data = bytearray(f.data)
            data[offset] ^= 0xFF
            f.data = bytes(data)
