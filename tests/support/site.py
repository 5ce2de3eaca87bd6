"""A real HTTP server for fixture sites: serves what a test puts in its routes, on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from digest.watch.fetch import ROBOTS


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    gzip: bool = False
    drip_seconds: float = 0.0  # send one byte per this many seconds
    etag: bool = True
    _sent: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.wire()  # compressed now, not inside the client's fetch deadline

    def wire(self) -> bytes:
        """The body as it goes out: compressed once for a gzip route, not on every request
        (50 MB took longer than a short fetch deadline on a busy machine)."""
        if not self.gzip:
            return self.body
        if self._sent is None or self._sent[0] is not self.body:
            self._sent = (self.body, gzip.compress(self.body))
        return self._sent[1]


class _QuietServer(ThreadingHTTPServer):
    """Stops at once: socketserver's own loop notices a shutdown only between polls (every
    0.5 s by default), which summed to most of the suite's teardown."""

    timeout = 0.1  # handle_request is called once the socket is ready; never wait long

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._stopping = False
        self._wake_read, self._wake_write = socket.socketpair()

    def serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping:
                for key, _events in selector.select():
                    if key.fileobj is self and not self._stopping:
                        self.handle_request()  # ready: it does not wait

    def stop(self, thread: threading.Thread) -> None:
        self._stopping = True
        self._wake_write.send(b"x")
        thread.join()
        self.server_close()
        self._wake_read.close()
        self._wake_write.close()

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # A client that hangs up early (a cut-off fetch) is part of the tests, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FixtureSite:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.arrivals: list[float] = []  # time.time() of each request
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes; without this, Nagle's
                # algorithm and delayed ACKs stall each keep-alive response by ~40 ms.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                site.requests.append((self.path, dict(self.headers.items())))
                site.arrivals.append(time.time())
                route = site.routes.get(self.path)
                if route is None:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})
                    return
                body = route.wire()
                headers = {"Content-Type": route.content_type, **route.headers}
                if route.gzip:
                    headers["Content-Encoding"] = "gzip"
                if route.etag and route.status == 200:
                    tag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
                    headers["ETag"] = tag
                    if self.headers.get("If-None-Match") == tag:
                        self._send(304, b"", {"ETag": tag})
                        return
                if route.drip_seconds:
                    self._drip(route, body, headers)
                    return
                self._send(route.status, body, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drip(self, route: Route, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(route.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(route.drip_seconds)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = _QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> FixtureSite:
        # The fetcher keeps robots.txt per origin for the process; a site on a port an
        # earlier test's site used must not inherit that site's rules.
        ROBOTS.clear()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.stop(self.thread)
