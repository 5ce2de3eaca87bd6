"""Connections to the very address that was checked, within the wall-clock deadline of a fetch.

Each new connection resolves its host once, refuses it when an address is not public,
and connects to a checked address, so a second DNS answer cannot send it elsewhere;
TLS still sends and verifies the host name. Every step (lookup, connect, TLS, each
read and write) is bounded by the deadline of the current fetch, so a server that
trickles bytes cannot hold a fetch, or the per-host lock, past it.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import httpcore
import httpx

from digest.watch.addresses import refusal
from digest.watch.polite import AddressRule, Resolver, check_addresses, resolve_host

_DEADLINE: ContextVar[float | None] = ContextVar("fetch_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every network step taken inside the block to `seconds` from now, in all."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """The step's own timeout, cut to what is left of the deadline."""
    end = _DEADLINE.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the deadline of the fetch has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Resolve once, check every address with `rule` (None: allow any), connect to one of them."""

    def __init__(
        self, resolve: Resolver = resolve_host, rule: AddressRule | None = refusal
    ) -> None:
        self._resolve = resolve
        self._rule = rule
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._addresses(host, port, timeout)
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                # An address literal: the socket layer does no lookup of its own.
                stream = self._sockets.connect_tcp(
                    address,
                    port,
                    _bounded(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        raise failure

    def _addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        """The host's addresses, each allowed by the rule (HostRefused if one is not)."""
        try:
            addresses = self._resolve(host, port, _bounded(timeout, httpcore.ConnectTimeout))
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        except (UnicodeError, ValueError) as exc:  # a name no resolver takes (IDNA)
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if self._rule is not None:
            check_addresses(host, addresses, self._rule)
        return addresses

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("fetching over a Unix socket is not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@lru_cache(maxsize=1)
def _default_context() -> ssl.SSLContext:
    """The verifying TLS context every fetcher shares; SSLContext is safe across threads."""
    return httpx.create_ssl_context()


class PinnedTransport(httpx.HTTPTransport):
    """httpx's own transport, with its connections made by a PinnedBackend.

    Use it with `trust_env=False` on the client: through a proxy from the environment,
    the address that is checked would not be the one that is reached.
    """

    def __init__(self, backend: PinnedBackend, verify: ssl.SSLContext | bool = True) -> None:
        # Loading the CA bundle costs tens of milliseconds of CPU: once per process, not
        # twice per fetcher (httpx would also build one for the pool replaced below).
        context = _default_context() if verify is True else httpx.create_ssl_context(verify)
        super().__init__(verify=context)
        # httpx (0.28) has no public way to hand its pool a network backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )
