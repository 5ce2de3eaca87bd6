"""Dramatiq actors: thin wrappers that take ids and call a service within the message's
unit of work (`unit()`, opened and committed by the `UnitOfWork` middleware).

Each kind of work has its own queue (`QUEUES`), so that a big run's chunks never delay a
collection or a confirmation mail: the Procfile gives the chunks their own workers.
Importing this module sets the broker from DIGEST_BROKER_URL, as `dramatiq digest.actors`
expects.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import cast

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy.orm import Session, sessionmaker

from digest.core.broker import build_broker
from digest.core.db import get_sessionmaker
from digest.core.periods import Period, period_of, schedule_of
from digest.core.settings import Settings, load_settings
from digest.core.unit_of_work import Unit, UnitOfWork
from digest.delivery import digests, outcomes, retention, runs
from digest.delivery.notices import lost_notices, send_notices
from digest.editors.audit import purge_audit
from digest.editors.signins import Lifetimes, purge_sessions
from digest.mail.pool import send_pool
from digest.watch.collect import collect_by_id, sessions_for
from digest.watch.fetch import make_fetcher
from digest.watch.selection import lease_due_sources
from subscribers.base import utcnow
from subscribers.models import Frequency
from subscribers.privacy import purge_unconfirmed, purge_unsubscribed

log = logging.getLogger(__name__)

settings = load_settings()


def current_settings() -> Settings:
    """The settings when a message runs (cached by `get_settings`): the same object as
    `settings` in a worker; in one process whose settings change (tests clear the cache)
    the current ones, not those of whoever imported this module first."""
    return load_settings()


def sessions() -> sessionmaker[Session]:
    return get_sessionmaker(current_settings().database_url)


units = UnitOfWork(lambda: sessions()())
broker = build_broker(settings.broker_url)
broker.add_middleware(units)
dramatiq.set_broker(broker)


def unit() -> Unit:
    """The unit of work of the message being processed on this thread."""
    return units.current()


# The queues, by the work on them; `dramatiq digest.actors --queues ...` in the Procfile.
COLLECT = "collect"  # sources: the due ones, and one now
RUNS = "runs"  # starting a digest run: creating its deliveries, enqueuing its chunks
DELIVER = "deliver"  # a chunk of a run's digests
NOTICES = "notices"  # confirmations and links, which people wait for
SWEEP = "sweep"  # the recovery sweep
QUEUES = (COLLECT, RUNS, DELIVER, NOTICES, SWEEP)


# A pass stops starting fetches once its budget is spent; the fetch under way then (and
# the robots.txt it may need) can take two fetch deadlines more. Only past that is the
# worker stopped, which records nothing in the source's health.
COLLECT_TIME_LIMIT = settings.fetch_source_budget_seconds + 2 * 3 * settings.fetch_timeout_seconds


@dramatiq.actor(queue_name=COLLECT, max_retries=0, time_limit=int((COLLECT_TIME_LIMIT + 60) * 1000))
def collect_source(source_id: int, at: str | None = None) -> None:
    config = current_settings()
    when = datetime.fromisoformat(at) if at else utcnow()
    # No session for the whole message: a pass opens its own short ones (watch.collect).
    with make_fetcher(config) as fetcher:
        outcome = collect_by_id(
            source_id,
            when,
            sessions=sessions_for(config.database_url),
            fetcher=fetcher,
            settings=config,
        )
    if outcome is not None:
        level = logging.INFO if outcome.ok else logging.WARNING
        log.log(level, "collected %s", outcome.describe())


@dramatiq.actor(queue_name=COLLECT, max_retries=0)
def collect_due() -> None:
    ids = lease_due_sources(unit().session, utcnow())
    for source_id in ids:
        unit().send_after_commit(collect_source, source_id)


@dramatiq.actor(queue_name=RUNS, max_retries=3)
def start_run(frequency: str, period_end: str, period_start: str | None = None) -> None:
    """Start the run of the period ending at `period_end` (from `period_start`: an
    immediate run catching up a gap) and hand its chunks to the workers."""
    config = current_settings()
    end = datetime.fromisoformat(period_end).astimezone(UTC)
    start = datetime.fromisoformat(period_start) if period_start else None
    period = period_of(Frequency(frequency), end, schedule_of(config), start)
    started = runs.start_run(unit().session, period, config.chunk_size)
    for chunk in started.chunks:
        unit().send_after_commit(deliver_chunk, started.run_id, chunk)


# Retries here are for exceptions (the database away, say); deliveries that failed for now
# are handed over again on their own, when they are due, not with the whole chunk. A worker
# that takes every queue (`digest run`'s) does the other messages it holds first (a higher
# number is a lower priority).
@dramatiq.actor(
    queue_name=DELIVER, priority=100, max_retries=8, min_backoff=30_000, max_backoff=3_600_000
)
def deliver_chunk(run_id: int, subscriber_ids: list[int]) -> None:
    config = current_settings()
    # Sending is several short transactions by design (see delivery.sending): it takes
    # the session factory, not the message's session, and the process's pool
    # (connections kept across chunks, several mails in flight).
    report = digests.deliver_chunk(sessions(), send_pool(config), config, run_id, subscriber_ids)
    log.info("run %s: %s", run_id, report.summary())
    if report.retry_ids:
        now = utcnow()
        # Never at once: a chunk that keeps failing for now must not spin through the queue.
        soon = now + timedelta(seconds=1)
        due = max(report.next_try_at or now + timedelta(seconds=config.retry_backoff_seconds), soon)
        runs.mark_queued(unit().session, run_id, report.retry_ids, due)
        later = partial(
            deliver_chunk.send_with_options,
            args=(run_id, report.retry_ids),
            delay=int((due - now).total_seconds() * 1000),
        )
        unit().after_commit.append(later)


@dramatiq.actor(queue_name=SWEEP, max_retries=0)
def recover() -> None:
    """The sweep: deliveries whose message or worker was lost, runs with nothing open,
    daily and weekly runs never started, notices a crash left behind, delivery rows past
    their retention, expired personal data, the audit log past the retention period and
    editors' sessions that have ended."""
    config = current_settings()
    # Mails a worker sent but could not record (the database was away) are recorded
    # first, so that none of them is handed over to be sent again.
    outcomes.replay_journals(sessions(), config)
    now = utcnow()
    session = unit().session
    chunks = runs.unfinished_chunks(session, now, runs.Requeue.of(config))
    for period in runs.missing_periods(session, now, schedule_of(config)):
        started = runs.start_run(session, period, config.chunk_size, now)
        log.warning("started the missing %s run %s", period.frequency.value, started.run_id)
        chunks.extend((started.run_id, chunk) for chunk in started.chunks)
    notices = lost_notices(session, now, timedelta(seconds=config.stale_claim_seconds))
    deleted = retention.delete_old_deliveries(session, now, config.delivery_retention_days)
    retained_since = now - timedelta(days=config.retention_days)
    purged = purge_unsubscribed(session, config.secret_key, retained_since)
    purge_unconfirmed(session, config.secret_key, now)  # sign-ups whose link expired
    purge_audit(session, retained_since)
    purge_sessions(session, Lifetimes.of(config), now)
    for run_id, chunk in chunks:
        unit().send_after_commit(deliver_chunk, run_id, chunk)
    if notices:
        unit().send_after_commit(send_notice_batch, notices)
    if chunks:
        log.info("handed %s chunk(s) to the workers again", len(chunks))
    if deleted:
        log.info("deleted %s delivery row(s) past their retention", deleted)
    if purged:
        log.info("erased %s person(s) past the retention period", purged)


@dramatiq.actor(queue_name=NOTICES, max_retries=3, min_backoff=60_000)
def send_notice_batch(notice_ids: list[int]) -> None:
    config = current_settings()
    report = send_notices(sessions(), send_pool(config), config, notice_ids)
    if report.failed:
        log.warning("%s notice(s) not sent: %s", report.failed, "; ".join(report.errors[:3]))


class _Failures(dramatiq.Middleware):
    """While `work_here` runs: the exceptions of the messages it processed, so that the
    command that asked for the work fails with them instead of exiting 0."""

    def __init__(self) -> None:
        self.seen: list[BaseException] | None = None

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        if self.seen is None or exception is None:
            return
        self.seen.append(exception)


_failures = _Failures()
broker.add_middleware(_failures)


def work_here() -> None:
    """On the in-memory broker, where no other process can take the messages: do what is
    queued, in this process, through the same actors and middleware as a worker would.

    Retries that back off are left undone; the database still owes them, and the next
    recovery sweep sends them. The first exception a message raised is raised here, once
    the queues are done, for the command's own error handling to explain.
    """
    memory = cast(StubBroker, broker)
    worker = dramatiq.Worker(memory, worker_threads=1, worker_timeout=100)
    # The failure is raised below and explained by the caller; the worker's own log line
    # with its traceback would say it twice.
    worker_log = logging.getLogger("dramatiq.worker")
    level = worker_log.level
    seen: list[BaseException] = []
    try:
        worker_log.setLevel(logging.CRITICAL)
        _failures.seen = seen
        worker.start()
        try:
            # The queues themselves, not their delay queues: those hold the backed-off
            # retries. Until all are empty at once: a start fills the deliver queue.
            queues = memory.get_declared_queues() - memory.get_declared_delay_queues()
            while busy := [q for q in queues if memory.queues[q].unfinished_tasks]:
                for queue in busy:
                    memory.queues[queue].join()
        finally:
            worker.stop()
    finally:
        worker_log.setLevel(level)
        _failures.seen = None
    for later in seen[1:]:  # raised below is the first; the others are not lost
        log.error("also failed: %s: %s", type(later).__name__, later, exc_info=later)
    if seen:
        raise seen[0]


def enqueue_chunks(started: runs.StartedRun) -> None:
    """Hand a started run's chunks to the workers (call it after the run is committed)."""
    for chunk in started.chunks:
        deliver_chunk.send(started.run_id, chunk)


class ActorJobs:
    """The web's way of handing work to the workers (`digest.web.jobs.Jobs`); the web calls
    it after its commit."""

    def collect_now(self, source_id: int) -> None:
        collect_source.send(source_id)

    def deliver(self, run_id: int, subscriber_ids: list[int]) -> None:
        deliver_chunk.send(run_id, list(subscriber_ids))

    def send_notices(self, notice_ids: list[int]) -> None:
        send_notice_batch.send(list(notice_ids))


class ActorEnqueuer:
    """The scheduler's way of handing work to the workers."""

    def collect_due(self) -> None:
        collect_due.send()

    def start_run(self, period: Period) -> None:
        start_run.send(period.frequency.value, period.end.isoformat(), period.start.isoformat())

    def recover(self) -> None:
        recover.send()
