"""A raw socket server that sends its whole response, status line and headers included,
one byte at a time, and notes whether the client hung up before it was done.
"""

from __future__ import annotations

import socket
import threading
import time

# Most of it is headers: a client reading it at one byte per 50 ms needs over 12 s for
# the status line and headers alone, while each single read is quick.
SLOW_HEADERS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    + b"X-Padding: "
    + b"a" * 200
    + b"\r\nContent-Length: 2\r\n\r\nok"
)


class TrickleServer:
    def __init__(self, response: bytes, pause: float, host: str = "127.0.0.1") -> None:
        self.response = response
        self.pause = pause
        self.cut_off = threading.Event()  # a client closed before the last byte
        self.finished = threading.Event()  # the last byte went out to a client
        self.connections = 0
        self._listener = socket.create_server((host, 0))
        self._stopped = False

    @property
    def base_url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> TrickleServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            try:
                for byte in self.response:
                    conn.sendall(bytes([byte]))
                    time.sleep(self.pause)
            except OSError:  # reset or broken pipe: the client hung up
                self.cut_off.set()
                return
            self.finished.set()
