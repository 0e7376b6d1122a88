"""HTTP handler of the Drive v2 emulator: routes, auth, resumable sessions, faults."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.servers.drive_auth import discovery_document, token_reply
from tests.servers.drive_query import QueryError, compile_query
from tests.servers.drive_state import (
    FOLDER_MIME,
    DriveFile,
    DriveState,
    UploadSession,
    error_body,
    file_resource,
)

if TYPE_CHECKING:
    from tests.servers.drive_emulator import DriveServer


class _Reply(Exception):
    """Raised inside a handler to answer at once."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message or reason


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DriveServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read counters
        pass

    @property
    def state(self) -> DriveState:
        return self.server.state

    # -- plumbing ---------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=UTF-8",
    ) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _res(self, f: DriveFile) -> dict[str, Any]:
        host = self.headers.get("Host", f"127.0.0.1:{self.server.server_port}")
        return file_resource(f, f"http://{host}/")

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path
        self.state.bump("requests")
        self.state.bump(f"{self.command} {re.sub(r'/files/[^/]+', '/files/ID', path)}")
        try:
            if self._fault(path):
                return
            if path == "/token" and self.command == "POST":
                return self._token()
            if path == "/discovery/v1/apis/drive/v2/rest" and self.command == "GET":
                return self._discovery()
            self._check_auth()
            self._route(path)
        except _Reply as r:
            if r.status >= 400:
                self._send(r.status, error_body(r.status, r.reason, r.message))
            else:
                self._send(r.status)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _fault(self, path: str) -> bool:
        with self.state.lock:
            rule = next(
                (
                    r
                    for r in self.state.faults
                    if r.times > 0 and r.method == self.command and re.search(r.path, path)
                ),
                None,
            )
            if rule is None:
                return False
            if rule.skip > 0:
                rule.skip -= 1
                return False
            rule.times -= 1
            self.state.bump("faults")
        body = self._read_body()
        if rule.partial and "upload_id" in self.query:
            self._receive_chunk(
                body[: len(body) // 2], self.headers.get("Content-Range", ""), answer=False
            )
        if rule.kind == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        if rule.kind == "html":
            page = f"<html><body><h1>{rule.status} Bad Gateway</h1></body></html>".encode()
            self._send(rule.status, page, content_type="text/html; charset=UTF-8")
        else:
            self._send(rule.status, error_body(rule.status, rule.reason, f"injected {rule.reason}"))
        return True

    # -- auth -------------------------------------------------------------------------------
    def _token(self) -> None:
        form = {k: v[-1] for k, v in parse_qs(self._read_body().decode()).items()}
        self.state.bump("token_requests")
        self._json(*token_reply(self.state, form))

    def _discovery(self) -> None:
        host = self.headers.get("Host", f"127.0.0.1:{self.server.server_port}")
        self._json(200, discovery_document(f"http://{host}/"))

    def _check_auth(self) -> None:
        auth = self.headers.get("Authorization", "")
        if not (auth.startswith("Bearer ") and auth[7:] in self.state.tokens):
            raise _Reply(401, "authError", "Invalid Credentials")

    # -- routes -----------------------------------------------------------------------------
    def _route(self, path: str) -> None:
        m = re.fullmatch(r"/(upload/)?drive/v2/files(?:/([^/]+))?(?:/(copy|trash|untrash))?", path)
        if not m:
            raise _Reply(404, "notFound", f"no route {path}")
        upload, file_id, action = m.group(1), m.group(2), m.group(3)
        cmd = self.command
        if upload:
            if "upload_id" in self.query and cmd == "PUT":
                return self._receive_chunk(self._read_body(), self.headers.get("Content-Range", ""))
            if self.query.get("uploadType") != "resumable":
                raise _Reply(400, "badRequest", "the emulator supports uploadType=resumable only")
            return self._start_session(file_id)
        if file_id is None:
            if cmd == "GET":
                return self._list()
            if cmd == "POST":
                return self._insert_metadata()
        elif action == "copy" and cmd == "POST":
            return self._copy(file_id)
        elif action in ("trash", "untrash") and cmd == "POST":
            with self.state.lock:
                f = self._get(file_id)
                f.trashed = action == "trash"
                f.version += 1
                return self._json(200, self._res(f))
        elif action is None and cmd == "GET":
            return self._get_file(file_id)
        elif action is None and cmd == "DELETE":
            with self.state.lock:
                self._get(file_id)
                self._delete_tree(file_id)
            raise _Reply(204)
        elif action is None and cmd in ("PUT", "PATCH"):
            return self._update_metadata(file_id)
        raise _Reply(405, "badRequest", f"{cmd} not supported on {path}")

    def _get(self, file_id: str) -> DriveFile:
        f = self.state.files.get(file_id)
        if f is None:
            raise _Reply(404, "notFound", f"File not found: {file_id}")
        return f

    def _delete_tree(self, file_id: str) -> None:
        for child in [c.id for c in self.state.files.values() if file_id in c.parents]:
            self._delete_tree(child)
        self.state.files.pop(file_id, None)

    def _check_if_match(self, f: DriveFile) -> None:
        want = self.headers.get("If-Match")
        if want and want != "*" and want != f.etag:
            raise _Reply(412, "conditionNotMet", "Precondition Failed")

    def _apply_metadata(self, f: DriveFile, meta: dict[str, Any]) -> None:
        if "title" in meta:
            f.title = meta["title"]
        if "mimeType" in meta:
            f.mime_type = meta["mimeType"]
        if "parents" in meta:
            f.parents = [p["id"] for p in meta["parents"]]
        for prop in meta.get("properties") or []:
            f.properties[prop["key"]] = prop["value"]
        if "labels" in meta and "trashed" in meta["labels"]:
            f.trashed = bool(meta["labels"]["trashed"])

    def _check_parents(self, meta: dict[str, Any]) -> None:
        for p in meta.get("parents") or []:
            parent = self.state.files.get(p["id"])
            if parent is None or parent.mime_type != FOLDER_MIME:
                raise _Reply(404, "notFound", f"File not found: {p['id']}")

    def _insert_metadata(self) -> None:
        meta = json.loads(self._read_body() or b"{}")
        with self.state.lock:
            self._check_parents(meta)
            f = DriveFile(
                self.state.new_id(),
                meta.get("title", "Untitled"),
                meta.get("mimeType", "application/octet-stream"),
                ["root"],
            )
            self._apply_metadata(f, meta)
            self.state.files[f.id] = f
            self._json(200, self._res(f))

    def _update_metadata(self, file_id: str) -> None:
        meta = json.loads(self._read_body() or b"{}")
        with self.state.lock:
            f = self._get(file_id)
            self._check_if_match(f)
            self._check_parents(meta)
            self._apply_metadata(f, meta)
            f.version += 1
            f.modified = datetime.now(UTC)
            self._json(200, self._res(f))

    def _copy(self, file_id: str) -> None:
        meta = json.loads(self._read_body() or b"{}")
        with self.state.lock:
            src = self._get(file_id)
            self._check_quota(len(src.data))
            self._check_parents(meta)
            f = DriveFile(
                self.state.new_id(),
                src.title,
                src.mime_type,
                list(src.parents),
                src.data,
                properties=dict(src.properties),
            )
            self._apply_metadata(f, meta)
            self.state.files[f.id] = f
            self._json(200, self._res(f))

    def _get_file(self, file_id: str) -> None:
        with self.state.lock:
            f = self._get(file_id)
            data = f.data
            res = self._res(f)
        if self.query.get("alt") != "media":
            return self._json(200, res)
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if not rng:
            self.state.bump("media_bytes_sent", len(data))
            return self._send(200, data, content_type="application/octet-stream")
        start = int(rng.group(1))
        end = min(int(rng.group(2)) if rng.group(2) else len(data) - 1, len(data) - 1)
        if start >= len(data):  # also every Range on an empty file, as on real Drive
            body = error_body(416, "requestedRangeNotSatisfiable", "Range not satisfiable")
            return self._send(416, body, {"Content-Range": f"bytes */{len(data)}"})
        chunk = data[start : end + 1]
        self.state.bump("media_bytes_sent", len(chunk))
        self._send(
            206,
            chunk,
            {"Content-Range": f"bytes {start}-{end}/{len(data)}"},
            content_type="application/octet-stream",
        )

    def _list(self) -> None:
        try:
            pred = compile_query(self.query.get("q"))
        except QueryError as exc:
            raise _Reply(400, "invalidQuery", f"Invalid query: {exc}") from exc
        max_results = max(1, min(int(self.query.get("maxResults", 100)), 1000))
        offset = int(self.query.get("pageToken") or 0)
        with self.state.lock:
            matched = [f for f in self.state.files.values() if f.id != "root" and pred(f)]
            matched.sort(key=lambda f: (f.created, f.id))
            page = [self._res(f) for f in matched[offset : offset + max_results]]
        body: dict[str, Any] = {"kind": "drive#fileList", "items": page}
        if offset + max_results < len(matched):
            body["nextPageToken"] = str(offset + max_results)
        self._json(200, body)

    # -- resumable uploads ------------------------------------------------------------------
    def _check_quota(self, extra: int) -> None:
        quota = self.state.quota_bytes
        if quota is not None and self.state.used_bytes() + extra > quota:
            raise _Reply(
                403, "storageQuotaExceeded", "The user's Drive storage quota has been exceeded."
            )

    def _start_session(self, file_id: str | None) -> None:
        meta = json.loads(self._read_body() or b"{}")
        size = self.headers.get("X-Upload-Content-Length")
        with self.state.lock:
            if file_id is not None:
                self._check_if_match(self._get(file_id))
            self._check_parents(meta)
            if size is not None:
                self._check_quota(int(size))
            sid = uuid.uuid4().hex
            self.state.sessions[sid] = UploadSession(meta, int(size) if size else None, file_id)
        host = self.headers.get("Host", f"127.0.0.1:{self.server.server_port}")
        target = f"/{file_id}" if file_id else ""
        location = (
            f"http://{host}/upload/drive/v2/files{target}?uploadType=resumable&upload_id={sid}"
        )
        self._send(200, b"", {"Location": location})

    def _receive_chunk(self, body: bytes, content_range: str, answer: bool = True) -> None:
        self.state.bump("upload_bytes", len(body))
        with self.state.lock:
            session = self.state.sessions.get(self.query["upload_id"])
            if session is None:
                raise _Reply(404, "notFound", "upload session not found or expired")
            if session.completed_id is not None:
                return self._json(200, self._res(self._get(session.completed_id)))
            m = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", content_range.strip())
            if content_range and not m:
                raise _Reply(400, "badRequest", f"bad Content-Range {content_range!r}")
            if m and m.group(3) != "*":
                session.size = int(m.group(3))
            if m and m.group(1) is not None:
                start = int(m.group(1))
                have = len(session.data)
                if start > have:
                    raise _Reply(400, "badRequest", f"chunk starts at {start}, have {have}")
                session.data += body[have - start :]
            elif not content_range:
                session.data += body
            if not answer:
                return
            done = session.size is not None and len(session.data) >= session.size
            if not done:
                have = len(session.data)
                headers = {"Range": f"bytes=0-{have - 1}"} if have else {}
                return self._send(308, b"", headers)
            self._check_quota(len(session.data))
            if session.target_id is not None:
                f = self._get(session.target_id)
                f.version += 1
            else:
                f = DriveFile(self.state.new_id(), "Untitled", "application/octet-stream", ["root"])
                self.state.files[f.id] = f
            self._apply_metadata(f, session.metadata)
            data = bytearray(session.data[: session.size])
            if self.state.corrupt_uploads > 0 and data:
                self.state.corrupt_uploads -= 1
                data[len(data) // 2] ^= 0xFF
            f.data = bytes(data)
            f.modified = datetime.now(UTC)
            session.completed_id, session.data = f.id, bytearray()
            self.state.bump("uploads_completed")
            self._json(200, self._res(f))
