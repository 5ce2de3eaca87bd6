"""How many mails may go to the relay per second: fixed windows counted in Redis, so all
workers share one limit, or in the process when Redis is not there (the embedded broker)."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from digest.core.settings import Settings

log = logging.getLogger(__name__)

# Counts a window's grants, and only up to the limit, so a window's count is exactly the
# mails let through in it; one script, so two workers cannot both take the last place.
_TAKE = """
local taken = tonumber(redis.call('GET', KEYS[1]) or '0')
if taken >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
if taken == 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
# Windows are kept a minute: enough to look back at what went out, little to store.
KEEP_SECONDS = 60


class RateLimit:
    """`rate` per second as whole mails per fixed window: windows of a second, or longer
    for a rate under one, aligned to the epoch so every process sees the same ones."""

    def __init__(self, rate: float) -> None:
        self.seconds = max(1.0, 1.0 / rate)
        self.allowed = max(1, math.floor(rate * self.seconds))

    async def take(self, window: int) -> bool:
        """Take a place in `window`, if one is left."""
        raise NotImplementedError

    async def acquire(self) -> int:
        """Wait for a place; returns the window it is in."""
        while True:
            window = math.floor(time.time() / self.seconds)
            if await self.take(window):
                return window
            await asyncio.sleep(max(0.0, (window + 1) * self.seconds - time.time()))

    async def close(self) -> None:
        return None


class LocalRateLimit(RateLimit):
    """The limit for this process alone."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self._window, self._taken = -1, 0

    async def take(self, window: int) -> bool:
        if window != self._window:
            self._window, self._taken = window, 0
        if self._taken >= self.allowed:
            return False
        self._taken += 1
        return True


class RedisRateLimit(RateLimit):
    """The limit shared by every process using the same Redis and key prefix. Should Redis
    fail, this process goes on under the limit alone (saying so once) rather than stop
    sending, and tries Redis again after `pause` seconds, not for every mail."""

    def __init__(
        self, rate: float, url: str, prefix: str, timeout: float = 0.5, pause: float = 30.0
    ) -> None:
        super().__init__(rate)
        self.prefix = prefix
        # One short attempt: a mail waits at most `timeout` for Redis.
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._take = self._redis.register_script(_TAKE)
        self._local = LocalRateLimit(rate)
        self._pause = pause
        self._failing_until: float | None = None

    async def take(self, window: int) -> bool:
        now = time.monotonic()
        if self._failing_until is not None and now < self._failing_until:
            return await self._local.take(window)
        keep = max(KEEP_SECONDS, math.ceil(2 * self.seconds))
        try:
            taken = await self._take(keys=[f"{self.prefix}:{window}"], args=[self.allowed, keep])
        except (RedisError, OSError) as exc:
            if self._failing_until is None:
                log.warning("Redis unreachable for the send rate, limiting this process: %s", exc)
            self._failing_until = now + self._pause
            return await self._local.take(window)
        if self._failing_until is not None:
            log.info("Redis reachable again for the send rate")
            self._failing_until = None
        return bool(taken)

    async def close(self) -> None:
        await self._redis.aclose()


def rate_limit(settings: Settings, prefix: str = "digest:smtp-rate") -> RateLimit | None:
    """The limit `settings` ask for: none at 0, shared when the broker is Redis."""
    rate = settings.smtp_rate_per_second
    if rate <= 0:
        return None
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return RedisRateLimit(rate, settings.broker_url, prefix)
    return LocalRateLimit(rate)
