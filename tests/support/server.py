"""The web app served for real by uvicorn in a thread, on a free local port."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time

import httpx
import uvicorn
from starlette.types import ASGIApp

from tests.support.smtp import free_port

# Loading the CA bundle costs tens of milliseconds; one context serves every test client.
TLS = httpx.create_ssl_context()


class _StoppableServer(uvicorn.Server):
    """uvicorn, but stopped at once from another thread.

    uvicorn checks `should_exit` every 0.1 s and then sleeps another 0.1 s for connections
    to close; summed over every test with a live app that was seconds of idle waiting.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if not self.should_exit:
            await self._stop.wait()

    def request_stop(self) -> None:
        self.should_exit = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        # What uvicorn does, with a short poll instead of a fixed 0.1 s pause (lifespan is off).
        deadline = time.monotonic() + 10
        while self.server_state.connections or self.server_state.tasks:
            if time.monotonic() > deadline:
                for task in self.server_state.tasks:
                    task.cancel()
                break
            await asyncio.sleep(0.005)


class LiveServer:
    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = _StoppableServer(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the web app did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.request_stop()
        self.thread.join(timeout=10)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, verify=TLS)


def csrf(client: httpx.Client, path: str = "/") -> str:
    """The CSRF field of the form on the page at `path` (fetching it sets the cookie)."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found, f"no CSRF field on {path}"
    return found[1]
