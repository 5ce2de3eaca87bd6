"""The Dramatiq broker chosen by DIGEST_BROKER_URL, and a health check for it."""

from __future__ import annotations

from urllib.parse import urlsplit

from dramatiq import Broker
from dramatiq.brokers.stub import StubBroker

from digest.core.errors import SettingError


def build_broker(url: str) -> Broker:
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return StubBroker()
    if scheme in ("redis", "rediss"):
        from dramatiq.brokers.redis import RedisBroker

        # dramatiq's RedisBroker.__init__ has no annotations; the call itself is plain.
        return RedisBroker(url=url)  # type: ignore[no-untyped-call]
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise SettingError("DIGEST_BROKER_URL", f"unsupported broker URL scheme {scheme!r}")


def check_broker(url: str, timeout: float = 3.0) -> str | None:
    """None when the broker answers, else the reason it does not."""
    scheme = urlsplit(url).scheme
    try:
        if scheme in ("redis", "rediss"):
            import redis

            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            try:
                client.ping()
            finally:
                client.close()
        elif scheme in ("amqp", "amqps"):
            import pika

            params = pika.URLParameters(url)
            params.socket_timeout = timeout
            params.blocked_connection_timeout = timeout
            pika.BlockingConnection(params).close()
    except Exception as exc:  # any failure is the answer to "does it answer?"
        return f"{type(exc).__name__}: {exc}"
    return None
