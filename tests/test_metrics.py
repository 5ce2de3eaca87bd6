"""GET /metrics: every figure reads back exactly through a Prometheus parser; the queue
depths it shows, read from the machine's Redis and RabbitMQ and from the in-memory broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from digest.core.broker import build_broker, queue_depths
from digest.core.db import session_scope
from digest.core.models import Delivery, DigestRun, MailStatus, RelayStatus, RunStatus
from digest.core.settings import Settings
from digest.delivery.status import RelayState, ServiceStatus
from digest.web.app import create_app
from digest.web.metrics import exposition
from subscribers.choices import choices
from subscribers.signups import add_subscriber
from tests.conftest import AMQP_URL, REDIS_URL
from tests.support.reviewing import detected
from tests.support.server import LiveServer
from tests.support.site import FixtureSite
from tests.support.smtp import free_port

README_FAMILIES = {
    "digest_sources": ("status",),
    "digest_source_consecutive_failures": ("source",),
    "digest_subscribers": ("status",),
    "digest_deliveries": ("status",),
    "digest_runs_unfinished": (),
    "digest_last_complete_period_end_seconds": ("frequency",),
    "digest_items": (),
    "digest_changes": (),
    "digest_changes_by_review": ("review",),
    "digest_sources_paused": (),
    "digest_changes_by_source": ("source",),
    "digest_latest_run_sending_seconds": ("frequency",),
    "digest_relay_paused": (),
    "digest_relay_paused_until_seconds": (),
    "digest_relay_failures_in_row": (),
    "digest_queue_messages": ("queue",),
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(settings: Settings) -> str:
    server = LiveServer(create_app(settings)).start()
    try:
        response = server.client().get("/metrics")
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return response.text


def test_a_period_end_reads_back_to_the_second(settings: Settings) -> None:
    end = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    with session_scope(settings.database_url) as session:
        session.add_all(
            [
                DigestRun(
                    frequency="daily",
                    period_start=datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
                    period_end=end,
                    status=RunStatus.COMPLETE.value,
                ),
                DigestRun(
                    frequency="daily",
                    period_start=end,
                    period_end=datetime(2026, 11, 28, 7, 0, tzinfo=UTC),
                    status=RunStatus.RUNNING.value,
                ),
            ]
        )
    figures = samples(scrape(settings))
    period_end = figures[("digest_last_complete_period_end_seconds", (("frequency", "daily"),))]
    assert period_end == 1795762800 == end.timestamp()
    assert figures[("digest_runs_unfinished", ())] == 1
    assert {name for name, _labels in figures} >= set(README_FAMILIES) - {
        # No sources, subscribers or deliveries yet: families without samples.
        "digest_sources",
        "digest_source_consecutive_failures",
        "digest_subscribers",
        "digest_deliveries",
        "digest_changes_by_review",
        "digest_changes_by_source",
        "digest_latest_run_sending_seconds",
        "digest_relay_paused_until_seconds",
        "digest_queue_messages",
    }


def test_large_counts_are_exact() -> None:
    status = ServiceStatus(
        sources_by_status={"ok": 12, "failing": 1},
        source_failures={"bufdir": 1_000_001, 'odd"key\\': 3},
        subscribers_by_status={"active": 1_234_567, "pending": 7},
        deliveries_by_status={"sent": 987_654_321},
        runs_unfinished=2,
        last_run_end={"weekly": datetime(2026, 11, 23, 7, 0, tzinfo=UTC)},
        items=1_234_567,
        changes=123_456_789,
        changes_by_review={"auto": 123_456_000, "waiting": 789},
        sources_paused=1,
        changes_by_source={"bufdir": 123_456_000},
        latest_run_sending_seconds={"daily": 41.5},
        relay=RelayState(datetime(2026, 11, 27, 7, 0, 30, tzinfo=UTC), 1_000_001, 12),
    )
    text = exposition(status, {"deliver": 1_000_000, "deliver.DQ": 7}).decode()
    figures = samples(text)
    assert figures[("digest_items", ())] == 1_234_567
    assert figures[("digest_changes", ())] == 123_456_789
    assert figures[("digest_changes_by_review", (("review", "waiting"),))] == 789
    assert figures[("digest_sources_paused", ())] == 1
    assert figures[("digest_subscribers", (("status", "active"),))] == 1_234_567
    assert figures[("digest_deliveries", (("status", "sent"),))] == 987_654_321
    assert figures[("digest_source_consecutive_failures", (("source", "bufdir"),))] == 1_000_001
    assert figures[("digest_source_consecutive_failures", (("source", 'odd"key\\'),))] == 3
    assert figures[("digest_sources", (("status", "failing"),))] == 1
    assert figures[("digest_runs_unfinished", ())] == 2
    assert figures[("digest_last_complete_period_end_seconds", (("frequency", "weekly"),))] == (
        1795417200
    )
    assert figures[("digest_changes_by_source", (("source", "bufdir"),))] == 123_456_000
    assert figures[("digest_latest_run_sending_seconds", (("frequency", "daily"),))] == 41.5
    assert figures[("digest_relay_paused", ())] == 1
    assert figures[("digest_relay_paused_until_seconds", ())] == 1795762830
    assert figures[("digest_relay_pauses_total", ())] == 1_000_001
    assert figures[("digest_relay_failures_in_row", ())] == 12
    assert figures[("digest_queue_messages", (("queue", "deliver"),))] == 1_000_000
    assert figures[("digest_queue_messages", (("queue", "deliver.DQ"),))] == 7
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, labels in README_FAMILIES.items():
        assert families[name].type == "gauge"
        assert all(tuple(s.labels) == labels for s in families[name].samples), name
    assert families["digest_relay_pauses"].type == "counter"


def test_changes_relay_pause_and_sending_time_through_the_web(
    settings: Settings, site: FixtureSite, tmp_path: Path
) -> None:
    detected(settings, site, tmp_path)  # two changes from each of two sources
    until = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    started = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    with session_scope(settings.database_url) as session:
        session.add(RelayStatus(id=1, failures_in_row=5, paused_until=until, pauses=2))
        run = DigestRun(
            frequency="daily",
            period_start=started - timedelta(days=1),
            period_end=started,
            created_at=started,
        )
        session.add(run)
        for n, sent in enumerate([started + timedelta(seconds=30), None]):
            subscriber = add_subscriber(
                session, f"nr{n}@kommune.no", choices(topics=["vold"]), confirmed=True
            )
            session.flush()
            session.add(
                Delivery(
                    run_id=run.id,
                    subscriber_id=subscriber.id,
                    status=MailStatus.SENT if sent else MailStatus.PENDING,
                    sent_at=sent,
                )
            )
    figures = samples(scrape(settings))
    assert figures[("digest_changes", ())] == 4
    assert figures[("digest_changes_by_source", (("source", "vold"),))] == 2
    assert figures[("digest_changes_by_source", (("source", "krise"),))] == 2
    assert figures[("digest_relay_paused", ())] == 1
    assert figures[("digest_relay_paused_until_seconds", ())] == until.timestamp()
    assert figures[("digest_relay_pauses_total", ())] == 2
    assert figures[("digest_relay_failures_in_row", ())] == 5
    assert figures[("digest_latest_run_sending_seconds", (("frequency", "daily"),))] == 30
    assert figures[("digest_deliveries", (("status", "pending"),))] == 1


def test_no_pause_no_relay_row(settings: Settings) -> None:
    figures = samples(scrape(settings))
    assert figures[("digest_relay_paused", ())] == 0
    assert figures[("digest_relay_pauses_total", ())] == 0
    assert not any(name == "digest_relay_paused_until_seconds" for name, _ in figures)


# --- queue depths ------------------------------------------------------------------------


def unique_queue() -> str:
    return f"observe-test-{uuid.uuid4().hex[:12]}"


def fill(broker: dramatiq.Broker, queue: str, now: int, later: int) -> None:
    broker.declare_queue(queue)
    for n in range(now + later):
        message = dramatiq.Message(
            queue_name=queue, actor_name="nothing", args=(n,), kwargs={}, options={}
        )
        broker.enqueue(message, delay=3_600_000 if n >= now else None)


def test_queue_depths_on_redis() -> None:
    queue = unique_queue()
    broker = build_broker(REDIS_URL)
    fill(broker, queue, now=3, later=2)
    client = broker.client
    client.zadd(f"dramatiq:{queue}.XQ", {"dead-message-id": 0})
    try:
        assert queue_depths(REDIS_URL, [queue]) == {queue: 3, f"{queue}.DQ": 2, f"{queue}.XQ": 1}
    finally:
        broker.flush(queue)  # only this test's keys; the shared Redis is not flushed
        client.delete(f"dramatiq:{queue}.XQ")
        broker.close()


def test_queue_depths_on_rabbitmq() -> None:
    queue = unique_queue()
    broker = build_broker(AMQP_URL)
    fill(broker, queue, now=2, later=1)
    try:
        assert queue_depths(AMQP_URL, [queue]) == {queue: 2, f"{queue}.DQ": 1, f"{queue}.XQ": 0}
        # A queue nobody declared holds nothing; the others are still counted.
        depths = queue_depths(AMQP_URL, [queue, unique_queue()])
        assert depths[queue] == 2 and sum(depths.values()) == 3
    finally:
        channel = broker.channel
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
        broker.close()


@pytest.fixture
def memory_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[dramatiq.Broker]:
    """An in-memory broker as the one this process's actors use."""
    broker = build_broker("memory://")
    monkeypatch.setattr(dramatiq.broker, "global_broker", broker)
    yield broker
    broker.close()


def test_queue_depths_on_the_in_memory_broker(memory_broker: dramatiq.Broker) -> None:
    fill(memory_broker, "deliver", now=4, later=1)
    fill(memory_broker, "collect", now=0, later=0)
    assert queue_depths("memory://") == {
        "collect": 0,
        "collect.DQ": 0,
        "collect.XQ": 0,
        "deliver": 4,
        "deliver.DQ": 1,
        "deliver.XQ": 0,
    }


def test_queue_depths_through_the_web(settings: Settings, memory_broker: dramatiq.Broker) -> None:
    fill(memory_broker, "deliver", now=2, later=0)
    figures = samples(scrape(settings))
    assert figures[("digest_queue_messages", (("queue", "deliver"),))] == 2


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_broker_away_has_no_depths_and_no_error(scheme: str) -> None:
    assert queue_depths(f"{scheme}://127.0.0.1:{free_port()}/", ["deliver"], timeout=1) == {}
