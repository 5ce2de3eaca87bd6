"""The Dramatiq broker chosen by DIGEST_BROKER_URL, with the middleware every worker has
(log context; metrics for Prometheus in worker processes), a health check and the depth
of its queues."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import dramatiq
from dramatiq import Broker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import q_name
from dramatiq.middleware import prometheus

from digest.core import instruments
from digest.core.errors import SettingError
from digest.core.logs import LogContext, configure_logging
from digest.core.settings import load_settings

if TYPE_CHECKING:
    import pika
    import redis

log = logging.getLogger(__name__)


def build_broker(url: str) -> Broker:
    broker = _broker_of(url)
    broker.add_middleware(LogContext())
    if not isinstance(broker, StubBroker):
        broker.add_middleware(WorkerProcess())
    return broker


def _broker_of(url: str) -> Broker:
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


class WorkerProcess(dramatiq.Middleware):
    """What a process the `dramatiq` command boots needs, and only such a process (not
    the web, the scheduler or a test that imports the actors): logs in the settings'
    format, and Dramatiq's Prometheus middleware, which serves the figures of all worker
    processes (Dramatiq's and digest.core.instruments) on dramatiq_prom_host and
    dramatiq_prom_port (0.0.0.0:9191 unless those variables say otherwise)."""

    def after_process_boot(self, broker: Broker) -> None:
        configure_logging(load_settings())
        # Before Dramatiq's middleware makes its metrics: they and ours go in the files.
        instruments.count_in_files(prometheus.DB_PATH)
        metrics = WorkerMetrics()
        broker.add_middleware(metrics)
        metrics.after_process_boot(broker)  # type: ignore[no-untyped-call]


class WorkerMetrics(prometheus.Prometheus):
    """Dramatiq's Prometheus middleware, whose exposition server says why it did not start
    (the port is taken, say) in one line instead of a traceback; the workers go on."""

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_metrics]


def serve_metrics() -> int:
    """The process the `dramatiq` command forks to serve the workers' figures."""
    configure_logging(load_settings())
    try:
        prometheus._run_exposition_server()  # type: ignore[no-untyped-call]
    except OSError as exc:
        log.error("no worker metrics on %s:%s: %s", prometheus.HTTP_HOST, prometheus.HTTP_PORT, exc)
        return 1
    return 0


@contextmanager
def _redis(url: str, timeout: float) -> Iterator[redis.Redis]:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def _amqp(url: str, timeout: float) -> Iterator[pika.BlockingConnection]:
    import pika

    params = pika.URLParameters(url)
    params.socket_timeout = timeout
    params.blocked_connection_timeout = timeout
    connection = pika.BlockingConnection(params)
    try:
        yield connection
    finally:
        if connection.is_open:
            connection.close()


def check_broker(url: str, timeout: float = 3.0) -> str | None:
    """None when the broker answers, else the reason it does not."""
    scheme = urlsplit(url).scheme
    try:
        if scheme in ("redis", "rediss"):
            with _redis(url, timeout) as client:
                client.ping()
        elif scheme in ("amqp", "amqps"):
            with _amqp(url, timeout):
                pass
    except Exception as exc:  # any failure is the answer to "does it answer?"
        return f"{type(exc).__name__}: {exc}"
    return None


def queue_depths(
    url: str, queues: Iterable[str] | None = None, timeout: float = 2.0
) -> dict[str, int]:
    """Messages waiting in each queue, in its delay queue (`name.DQ`: retries and delayed
    messages) and among its dead letters (`name.XQ`); empty when the broker does not answer.

    `queues` defaults to those declared in this process (by importing digest.actors); on
    the in-memory broker, the counts are those of the broker digest.actors made.
    """
    declared = dramatiq.broker.global_broker  # not get_broker(): that would make one
    if queues is None:
        queues = declared.get_declared_queues() if declared is not None else ()
    names = sorted({q_name(queue) for queue in queues})
    keys = [f"{name}{suffix}" for name in names for suffix in ("", ".DQ", ".XQ")]
    scheme = urlsplit(url).scheme
    try:
        if scheme == "memory":
            return _stub_depths(declared, names) if isinstance(declared, StubBroker) else {}
        if scheme in ("redis", "rediss"):
            with _redis(url, timeout) as client, client.pipeline(transaction=False) as pipe:
                # RedisBroker's layout: a list of ids per queue and per delay queue, and a
                # sorted set of the dead letters.
                for name in names:
                    pipe.llen(f"dramatiq:{name}")
                    pipe.llen(f"dramatiq:{name}.DQ")
                    pipe.zcard(f"dramatiq:{name}.XQ")
                return dict(zip(keys, pipe.execute(), strict=True))
        if scheme in ("amqp", "amqps"):
            return _amqp_depths(url, keys, timeout)
    except Exception as exc:  # the broker is away: no figures this time, and no error page
        log.warning("queue depths unknown: %s: %s", type(exc).__name__, exc)
    return {}


def _stub_depths(broker: StubBroker, names: list[str]) -> dict[str, int]:
    depths = {}
    for name in names:
        delayed = f"{name}.DQ"
        depths[name] = broker.queues[name].qsize() if name in broker.queues else 0
        depths[delayed] = broker.queues[delayed].qsize() if delayed in broker.queues else 0
        dead = broker.dead_letters_by_queue
        depths[f"{name}.XQ"] = len(dead.get(name, ())) + len(dead.get(delayed, ()))
    return depths


def _amqp_depths(url: str, keys: list[str], timeout: float) -> dict[str, int]:
    import pika.exceptions

    depths = {}
    with _amqp(url, timeout) as connection:
        channel = connection.channel()
        for key in keys:
            try:
                depths[key] = channel.queue_declare(key, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:  # not declared yet: nothing in it
                depths[key] = 0
                channel = connection.channel()
    return depths
