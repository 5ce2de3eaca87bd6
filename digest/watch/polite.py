"""Being a good and careful guest: which hosts may be fetched, per-host pacing, robots.txt."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from protego import Protego


class HostRefused(Exception):
    """The host resolves to an address the service must not reach."""


def check_public_host(host: str, port: int) -> None:
    """Refuse hosts that resolve to loopback, private, link-local or other non-global addresses.

    Every address the name resolves to is checked, so a name with one public and one
    private address is refused too.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostRefused(f"cannot resolve {host}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global:
            raise HostRefused(f"{host} resolves to a non-public address ({address})")


class HostPacer:
    """One request at a time per host, with at least `delay` seconds between them.

    Shared by every fetcher in the process, so worker threads pace together.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._last: dict[str, float] = {}

    def _lock(self, host: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def run(self, host: str, delay: float, call: Callable[[], object]) -> object:
        with self._lock(host):
            wait = self._last.get(host, 0.0) + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                return call()
            finally:
                self._last[host] = time.monotonic()


PACER = HostPacer()


@lru_cache(maxsize=4)
def _redis_client(url: str):  # type: ignore[no-untyped-def]
    import redis  # only deployments on Redis need it

    return redis.Redis.from_url(url)


class SharedHostPacer:
    """The same rule across processes and machines, kept in Redis.

    A key per host is held while a request runs and, once it is done, left to expire
    after `delay`; whoever wants the host next waits until the key is gone. In-process
    pacing comes first, so threads of one worker do not poll Redis against each other.
    """

    POLL = 0.05

    def __init__(self, redis_url: str, prefix: str = "digest:pace:") -> None:
        self._redis = _redis_client(redis_url)
        self._prefix = prefix

    def run(
        self, host: str, delay: float, call: Callable[[], object], hold: float = 300.0
    ) -> object:
        key = self._prefix + host
        token = secrets.token_hex(8)
        return PACER.run(host, 0.0, lambda: self._run(key, token, delay, call, hold))

    def _run(
        self, key: str, token: str, delay: float, call: Callable[[], object], hold: float
    ) -> object:
        # `hold` bounds how long a crashed holder can block the host.
        while not self._redis.set(key, token, nx=True, px=int(hold * 1000)):
            time.sleep(self.POLL)
        try:
            return call()
        finally:
            if self._redis.get(key) == token.encode():
                if delay > 0:
                    self._redis.pexpire(key, int(delay * 1000))
                else:
                    self._redis.delete(key)


@dataclass
class RobotsCache:
    """robots.txt per host, kept for `ttl` seconds."""

    ttl: float = 3600.0
    _rules: dict[str, tuple[float, Protego | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, origin: str) -> tuple[bool, Protego | None]:
        with self._lock:
            entry = self._rules.get(origin)
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return False, None
        return True, entry[1]

    def put(self, origin: str, rules: Protego | None) -> None:
        with self._lock:
            self._rules[origin] = (time.monotonic(), rules)


ALLOW_ALL = Protego.parse("")
DENY_ALL = Protego.parse("User-agent: *\nDisallow: /")


def parse_robots(status: int | None, body: bytes) -> Protego:
    """Rules from a robots.txt response, as RFC 9309 reads them.

    4xx means no rules; a server error or no answer means "stay out for now".
    """
    if status is not None and 400 <= status < 500:
        return ALLOW_ALL
    if status is None or status >= 500:
        return DENY_ALL
    return Protego.parse(body.decode("utf-8", errors="replace")[:500_000])
