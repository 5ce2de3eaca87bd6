"""Dramatiq actors: thin wrappers that take ids, open a session and call a service.

Importing this module sets the broker from DIGEST_BROKER_URL, as `dramatiq digest.actors`
expects.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dramatiq

from digest.core.broker import build_broker
from digest.core.db import session_scope
from digest.core.periods import Period, latest_period, schedule_of
from digest.core.settings import load_settings
from digest.delivery import runs
from digest.delivery.notices import lost_notices, send_notices
from digest.watch.collect import collect_by_id, lease_due_sources
from subscribers.base import utcnow
from subscribers.models import Frequency
from subscribers.privacy import purge_unconfirmed, purge_unsubscribed

log = logging.getLogger(__name__)

settings = load_settings()
broker = build_broker(settings.broker_url)
dramatiq.set_broker(broker)


class RetryLater(Exception):
    """Some deliveries of a chunk failed for now; Dramatiq retries the chunk with backoff."""


# A pass stops starting fetches once its budget is spent; the fetch under way then (and
# the robots.txt it may need) can take two fetch deadlines more. Only past that is the
# worker stopped, which records nothing in the source's health.
COLLECT_TIME_LIMIT = settings.fetch_source_budget_seconds + 2 * 3 * settings.fetch_timeout_seconds


@dramatiq.actor(max_retries=0, time_limit=int((COLLECT_TIME_LIMIT + 60) * 1000))
def collect_source(source_id: int, at: str | None = None) -> None:
    when = datetime.fromisoformat(at) if at else utcnow()
    outcome = collect_by_id(settings, source_id, when)
    if outcome is not None:
        level = logging.INFO if outcome.ok else logging.WARNING
        log.log(level, "collected %s", outcome.describe())


@dramatiq.actor(max_retries=0)
def collect_due() -> None:
    with session_scope(settings.database_url) as session:
        ids = lease_due_sources(session, utcnow())
    for source_id in ids:  # after commit
        collect_source.send(source_id)


def enqueue_chunks(started: runs.StartedRun) -> None:
    for chunk in started.chunks:
        deliver_chunk.send(started.run_id, chunk)


@dramatiq.actor(max_retries=3)
def start_run(frequency: str, period_end: str) -> None:
    end = datetime.fromisoformat(period_end).astimezone(UTC)
    period = latest_period(Frequency(frequency), end, schedule_of(settings))
    with session_scope(settings.database_url) as session:
        started = runs.start_run(session, period)
    enqueue_chunks(started)


@dramatiq.actor(max_retries=8, min_backoff=30_000, max_backoff=3_600_000)
def deliver_chunk(run_id: int, subscriber_ids: list[int]) -> None:
    report = runs.deliver_chunk(settings, run_id, subscriber_ids)
    log.info(
        "run %s: %s sent, %s skipped, %s failed, %s to retry",
        run_id,
        report.sent,
        report.skipped,
        report.failed,
        report.retry,
    )
    if report.retry:
        raise RetryLater(f"{report.retry} deliveries of run {run_id} failed for now")


@dramatiq.actor(max_retries=0)
def recover() -> None:
    """The sweep: unfinished deliveries, notices a crash left behind, expired personal data."""
    now = utcnow()
    with session_scope(settings.database_url) as session:
        chunks = runs.unfinished_chunks(session, now)
        notices = lost_notices(session, now)
        purged = purge_unsubscribed(
            session, settings.secret_key, now - timedelta(days=settings.retention_days)
        )
        purge_unconfirmed(session, settings.secret_key, now)  # sign-ups whose link expired
    for run_id, chunk in chunks:
        deliver_chunk.send(run_id, chunk)
    if notices:
        send_notice_batch.send(notices)
    if purged:
        log.info("erased %s person(s) past the retention period", purged)


@dramatiq.actor(max_retries=3, min_backoff=60_000)
def send_notice_batch(notice_ids: list[int]) -> None:
    report = send_notices(settings, notice_ids)
    if report.failed:
        log.warning("%s notice(s) not sent: %s", report.failed, "; ".join(report.errors[:3]))


class ActorEnqueuer:
    """The scheduler's way of handing work to the workers."""

    def collect_due(self) -> None:
        collect_due.send()

    def start_run(self, period: Period) -> None:
        start_run.send(period.frequency.value, period.end.isoformat())

    def recover(self) -> None:
        recover.send()
