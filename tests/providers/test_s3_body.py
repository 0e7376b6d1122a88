"""A GET's body read into a reused buffer (providers.s3.body): every byte arrives, whether read
straight from http.client (a body with a Content-Length) or through botocore's StreamingBody (a
chunked one), and a body read to its end leaves its connection to the next request. A real HTTP
server on loopback, urllib3 and botocore as botocore uses them."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3
from botocore.response import StreamingBody

from providers.s3.body import BodyReader

DATA = random.Random(7).randbytes(3 * 1024 * 1024 + 321)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 endpoints answer

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for at in range(0, len(DATA), 100_000):
                piece = DATA[at : at + 100_000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _get(pool: urllib3.HTTPConnectionPool, path: str) -> StreamingBody:
    # as botocore asks: no preloading, no decoding; a pool with no free connection raises
    resp = pool.urlopen("GET", path, preload_content=False, decode_content=False, pool_timeout=5)
    length = resp.headers.get("Content-Length")
    return StreamingBody(resp, int(length) if length else None)


def _read_all(reader: BodyReader, size: int) -> bytes:
    buf = memoryview(bytearray(size))  # one buffer, reused
    out = bytearray()
    while n := reader.fill(buf):
        out += buf[:n]
    reader.finish()
    return bytes(out)


@pytest.mark.parametrize("path", ["/sized", "/chunked"])
def test_every_byte_of_the_body_arrives_through_a_reused_buffer(server, path):
    pool = urllib3.connectionpool.connection_from_url(server, maxsize=1)
    with pool:
        for size in (1 << 20, 4096, 3 * 1024 * 1024 + 321):  # several reads, a short last one
            assert _read_all(BodyReader(_get(pool, path)), size) == DATA


def test_a_body_read_to_its_end_leaves_its_connection_to_the_next_get(server):
    pool = urllib3.connectionpool.connection_from_url(server, maxsize=1, block=True)
    with pool:
        for _ in range(3):  # a pool of one, blocking: a connection not handed back fails the next
            assert _read_all(BodyReader(_get(pool, "/sized")), 1 << 20) == DATA
        assert pool.num_connections == 1
