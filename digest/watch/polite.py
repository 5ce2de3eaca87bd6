"""Being a good and careful guest: which hosts may be fetched, per-host pacing, robots.txt."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from protego import Protego

from digest.watch.addresses import IPAddress, parse_address, refusal
from digest.watch.errors import WatchError


class HostRefused(WatchError):
    """The host resolves to an address the service must not reach: `host`, the `address`
    refused, and `why` (e.g. «private»)."""

    def __init__(self, host: str, address: IPAddress, why: str) -> None:
        super().__init__(f"{host} resolves to a non-public address ({address}: {why})")
        self.host = host
        self.address = address
        self.why = why


Resolver = Callable[[str, int, float | None], list[str]]
AddressRule = Callable[[IPAddress], str | None]


def resolve_host(host: str, port: int, timeout: float | None = None) -> list[str]:
    """The addresses of `host`, in the resolver's order; an address literal is its own.

    The lookup runs in a daemon thread so that a resolver that hangs cannot hold the
    fetch past its deadline: TimeoutError after `timeout` seconds.
    """
    try:
        parse_address(host)
        return [host]
    except ValueError:
        pass
    answer: list[list[str] | BaseException] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            answer.append(list(dict.fromkeys(str(info[4][0]) for info in infos)))
        except Exception as exc:  # handed to the caller, whatever it is, at once
            answer.append(exc)

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not answer:
        raise TimeoutError(f"resolving {host} took longer than {timeout:g} s")
    if isinstance(answer[0], BaseException):
        raise OSError(f"cannot resolve {host}: {answer[0]}")
    if not answer[0]:
        raise OSError(f"cannot resolve {host}: no address")
    return answer[0]


def check_addresses(host: str, addresses: list[str], rule: AddressRule = refusal) -> None:
    """Refuse the host when any of its addresses is not public.

    A name with one public and one private address is refused too: which of them a
    connection would use is not ours to choose.
    """
    for text in addresses:
        address = parse_address(text)
        why = rule(address)
        if why:
            raise HostRefused(host, address, why)


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

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


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
