"""A fault-injecting HTTP proxy on loopback, in front of a real server (SeaweedFS).

Clients point ``endpoint_url`` at the proxy; requests are forwarded unchanged (Host header
included, so SigV4 signatures stay valid). Faults are deterministic: a rule fires on every
``every``-th matching request, at most ``limit`` times. Kinds:
- ``reset``: close the client connection with a TCP RST before answering;
- ``500`` / ``503``: answer that status with an S3 XML error body (``InternalError`` /
  ``ServiceUnavailable``); ``slowdown``: 503 with code ``SlowDown``; ``quota`` / ``denied``: 403
  with ``QuotaExceeded`` / ``AccessDenied`` (permanent errors); ``501``: ``NotImplemented`` (a
  server without the operation);
- ``cut``: forward, then send the response headers and the first half of the body (rounded down:
  nothing of a 1-byte body) and reset (a download interrupted mid-stream);
- ``corrupt``: flip one byte of the request body before forwarding (the server's checksum check
  must reject it);
- ``rot``: forward, then flip one byte in the middle of the response body (bytes damaged on the
  way back that no transport check caught: the client's own check must);
- ``stall``: hold the request until ``clear()`` (at most a minute), then forward it. With
  ``after=N`` a rule lets its first N matching requests through.
Counters: ``requests`` (every request seen, by method), ``body_bytes`` (request body bytes
forwarded upstream), ``response_bytes`` (response body bytes sent back), ``faults`` (fired).
``clear()`` resets them; a request already in flight then (say, of a process just killed) is not
counted afterwards. ``uplink`` (bytes/s) makes request bodies cross one shared link of that
speed, for benchmarks of what a push costs over a real connection.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te"}
_CODES = {"500": (500, "InternalError"), "503": (503, "ServiceUnavailable")}
_CODES["slowdown"] = (503, "SlowDown")
_CODES["quota"] = (403, "QuotaExceeded")  # permanent: a full account or bucket quota
_CODES["denied"] = (403, "AccessDenied")  # permanent: e.g. a key that may list but not write
_CODES["501"] = (501, "NotImplemented")


@dataclass
class Rule:
    kind: str
    every: int = 1
    limit: int = 1
    method: str | None = None
    path_contains: str | None = None
    header: str | None = None  # only requests carrying this header (``x-amz-copy-source``)
    after: int = 0  # let this many matching requests through before the rule may fire
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str, headers: frozenset[str] = frozenset()) -> bool:
        if self.method and method != self.method:
            return False
        if self.header and self.header.lower() not in headers:
            return False
        return not (self.path_contains and self.path_contains not in path)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rules: list[Rule] = []
        self.requests: Counter[str] = Counter()
        self.body_bytes = 0
        self.response_bytes = 0
        self.faults = 0
        self.epoch = 0  # bumped by clear(): a request seen before it never counts after it
        self.first_request_at: float | None = None  # time.perf_counter() of the first request
        # bytes per second of request bodies, shared by every connection (a home or office
        # uplink, for benchmarks); None: as fast as loopback
        self.uplink: float | None = None
        self._uplink_free_at = 0.0
        self.released = threading.Event()  # what ``stall``ed requests wait for: clear()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, kind: str, **kw: object) -> Rule:
        rule = Rule(kind, **kw)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.body_bytes = 0
            self.response_bytes = 0
            self.faults = 0
            self.first_request_at = None
            self.epoch += 1
            self.released.set()  # stalled requests go on (their client is usually dead)
            self.released = threading.Event()

    def _decide(self, method: str, path: str, headers: frozenset[str] = frozenset()) -> str | None:
        with self._lock:
            if self.first_request_at is None:
                self.first_request_at = time.perf_counter()
            self.requests[method] += 1
            for rule in self.rules:
                if rule.fired >= rule.limit or not rule.matches(method, path, headers):
                    continue
                rule.seen += 1
                if rule.seen > rule.after and (rule.seen - rule.after) % rule.every == 0:
                    rule.fired += 1
                    self.faults += 1
                    return rule.kind
        return None

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _make_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            self._epoch = proxy.epoch
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            names = frozenset(name.lower() for name in self.headers)
            fault = proxy._decide(self.command, self.path, names)
            if fault == "stall":
                # held until clear() (at most a minute): the client waits with what it has,
                # so a test can kill it at a known point instead of racing it
                proxy.released.wait(60)
            if fault == "reset":
                self.close_connection = True
                _reset(self.connection)
                return
            if fault in _CODES:
                status, code = _CODES[fault]
                xml = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(xml)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(xml)
                return
            if fault == "corrupt" and body:
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            with proxy._lock:
                if proxy.epoch == self._epoch:
                    proxy.body_bytes += len(body)
                if proxy.uplink and body:
                    # the body crosses the one uplink after whatever is queued on it
                    start = max(time.monotonic(), proxy._uplink_free_at)
                    proxy._uplink_free_at = start + len(body) / proxy.uplink
                    done_at = proxy._uplink_free_at
                else:
                    done_at = 0.0
            if done_at:
                time.sleep(max(0.0, done_at - time.monotonic()))
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP:
                        conn.putheader(name, value)
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            if fault == "rot" and data:
                mid = len(data) // 2
                data = data[:mid] + bytes([data[mid] ^ 0x01]) + data[mid + 1 :]
            self.send_response_only(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in _HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            declared = resp.getheader("Content-Length")
            if self.command == "HEAD" and declared is not None:
                self.send_header("Content-Length", declared)
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return
            # Counted once written, and only if clear() did not come in between: the answer to a
            # client killed meanwhile must not count against the run a test measures next.
            if fault == "cut" and data:
                # Every body is cut, a 1-byte one too (after 0 bytes): a rule that fired must
                # have had its effect, or a test depends on which request came first.
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self._count(len(data) // 2)
                self.close_connection = True
                _reset(self.connection)
                return
            self.wfile.write(data)
            self.wfile.flush()
            self._count(len(data))

        def _count(self, sent: int) -> None:
            with proxy._lock:
                if proxy.epoch == self._epoch:
                    proxy.response_bytes += sent

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@pytest.fixture
def fault_proxy(seaweedfs) -> Iterator[FaultProxy]:
    """A proxy in front of the session's SeaweedFS; use ``seaweedfs.settings(endpoint_url=
    fault_proxy.url)`` to route a remote through it."""
    proxy = FaultProxy(seaweedfs.endpoint_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()
