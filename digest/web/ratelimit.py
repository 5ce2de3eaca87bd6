"""Per-client rate limits: kept in this process, or shared by every web process through
Redis when the broker is Redis. Both forget clients that stay away for a window."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from secrets import token_hex
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

Clock = Callable[[], float]
PREFIX = "digest:rate:"


class Limiter(Protocol):
    def allow(self, key: str) -> bool: ...


@dataclass(slots=True)
class _Client:
    last_seen: float
    events: deque[float] = field(default_factory=deque)


class LocalRateLimiter:
    """At most `limit` events per key within `window` seconds, in this process.

    Keys are kept in order of last use, so each call drops clients idle for a whole window
    from the front (amortised O(1) per call, no rebuild), and the table never holds more
    than `max_keys`: past that the least recently seen client is dropped. That one gets a
    fresh allowance, which only someone with that many addresses could arrange, and they
    would have that many allowances anyway.
    """

    def __init__(
        self, limit: int, window: float, *, max_keys: int = 10_000, clock: Clock = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clients)

    def allow(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            self._forget_idle(now)
            client = self._clients.pop(key, None) or _Client(now)
            client.last_seen = now
            self._clients[key] = client  # now the most recently seen
            while len(self._clients) > self.max_keys:
                self._clients.popitem(last=False)
            events = client.events
            while events and now - events[0] > self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def _forget_idle(self, now: float) -> None:
        while self._clients:
            oldest = next(iter(self._clients.values()))
            if now - oldest.last_seen <= self.window:
                return
            self._clients.popitem(last=False)


# A sliding log per client in a sorted set, trimmed and checked in one atomic step; the key
# expires a window after the last counted event, so idle clients leave nothing behind.
_SLIDING_LOG = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - window))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""


class RedisRateLimiter:
    """The same rule as `LocalRateLimiter`, counted in Redis so web processes share it.

    If Redis cannot be reached, each process falls back to its own count (and says so
    once), and tries Redis again after `pause` seconds rather than on every request.
    Failing open this way keeps sign-ups and link requests working for real people while
    Redis is down, still limited per process, and the per-address limit on mails (kept in
    the database) holds regardless. Failing closed would turn a Redis outage into a
    sign-up outage; failing open with no count would leave no limit at all.
    """

    def __init__(
        self,
        url: str,
        limit: int,
        window: float,
        *,
        prefix: str = PREFIX,
        clock: Clock = time.time,  # wall clock: shared by processes on several machines
        timeout: float = 0.5,
        pause: float = 30.0,
    ) -> None:
        import redis  # only deployments on Redis need it
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.limit = limit
        self.window = window
        self._prefix = prefix
        self._clock = clock
        # One short attempt per request: a request waits at most `timeout` for Redis.
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._redis.register_script(_SLIDING_LOG)
        self._fallback = LocalRateLimiter(limit, window, clock=clock)
        self._pause = pause
        self._failing_until: float | None = None

    def allow(self, key: str) -> bool:
        import redis

        now = self._clock()
        if self._failing_until is not None and now < self._failing_until:
            return self._fallback.allow(key)
        now_ms = int(now * 1000)
        try:
            allowed = self._script(
                keys=[self._prefix + key],
                args=[now_ms, int(self.window * 1000), self.limit, f"{now_ms}-{token_hex(4)}"],
            )
        except redis.RedisError as exc:
            if self._failing_until is None:
                log.warning("Redis unreachable for rate limits, counting in-process: %s", exc)
            self._failing_until = now + self._pause
            return self._fallback.allow(key)
        if self._failing_until is not None:
            log.info("Redis reachable again for rate limits")
            self._failing_until = None
        return bool(allowed)


def build_limiter(broker_url: str, limit: int = 10, window: float = 600) -> Limiter:
    """Shared through Redis when the broker is Redis, else kept in this process."""
    if urlsplit(broker_url).scheme in ("redis", "rediss"):
        return RedisRateLimiter(broker_url, limit, window)
    return LocalRateLimiter(limit, window)


def client_key(host: str | None) -> str:
    """Who is counted: an IPv4 address, or the /64 an IPv6 address is in (one household or
    server usually has a whole /64, so counting single addresses would count nothing)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
