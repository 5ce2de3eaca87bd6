"""DigestRun and Delivery lifecycle: start a run and fan it out in chunks, find what the
broker lost and what the scheduler missed, close runs, and follow one until it is done;
what each delivery sends is in `digests`.

The database is the truth: a run is unique per (frequency, period) and a delivery per
(run, subscriber); a delivery is claimed with a conditional update, so two workers
never send the same digest. `queued_at` says when a delivery was last handed to the
broker: one still pending long after that lost its message, and `requeue_lost` hands it
over again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from digest.core.errors import DigestError
from digest.core.models import Delivery, DigestRun, MailStatus, RunStatus
from digest.core.periods import CATCH_UP, Period, Schedule, missed_periods
from digest.core.settings import Settings
from digest.delivery import claims
from digest.delivery.history import RunCounts, run_view
from digest.delivery.urgent import urgent_recipients
from subscribers.base import utcnow
from subscribers.models import Frequency, Status, Subscriber

# The settings' defaults, for callers without settings at hand (tests, the admin's retry).
CHUNK_SIZE: int = Settings.model_fields["chunk_size"].default
OPEN = (MailStatus.PENDING, MailStatus.SENDING)


class RunNotComplete(DigestError):
    """A run still had deliveries open when its waiter stopped waiting."""

    exit_code = 3

    def __init__(self, run_id: int, timeout: float) -> None:
        super().__init__(f"run {run_id} not complete after {timeout:g} s; the workers go on")
        self.run_id = run_id
        self.timeout = timeout


@dataclass(slots=True)
class StartedRun:
    """A run `start_run` found or created; `chunks` (to enqueue after the commit) only when
    it created it: an existing run's deliveries are the workers' and the sweep's."""

    run_id: int
    created: bool
    chunks: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Requeue:
    """When the sweep hands a delivery to the broker again: pending and handed over longer
    than `after` ago (its message lost), or claimed longer than `stale` ago (its worker
    lost); in chunks of `chunk_size`."""

    after: timedelta = timedelta(seconds=Settings.model_fields["requeue_after_seconds"].default)
    stale: timedelta = timedelta(seconds=Settings.model_fields["stale_claim_seconds"].default)
    chunk_size: int = CHUNK_SIZE

    @classmethod
    def of(cls, settings: Settings) -> Requeue:
        return cls(
            timedelta(seconds=settings.requeue_after_seconds),
            timedelta(seconds=settings.stale_claim_seconds),
            settings.chunk_size,
        )


def start_run(
    session: Session, period: Period, chunk_size: int = CHUNK_SIZE, now: datetime | None = None
) -> StartedRun:
    """Create the run and its deliveries (one per active subscriber of its frequency, and
    in an immediate run one per subscriber an urgent announcement is for), queued as of
    now: the caller enqueues the chunks after its commit. Or find the existing run, and
    enqueue nothing: a second start must not hand its pending deliveries over again."""
    now = now or utcnow()
    existing = _find_run(session, period)
    if existing is not None:
        return StartedRun(existing.id, False)
    try:
        with session.begin_nested():
            run = DigestRun(
                frequency=period.frequency,
                period_start=period.start,
                period_end=period.end,
                status=RunStatus.RUNNING,
                created_at=now,
            )
            session.add(run)
            session.flush()
    except IntegrityError:
        # Another process started the same run first; theirs is the one.
        theirs = _find_run(session, period)
        assert theirs is not None
        return StartedRun(theirs.id, False)
    subscriber_ids = list(
        session.scalars(
            select(Subscriber.id)
            .where(
                Subscriber.frequency == period.frequency,
                Subscriber.status == Status.ACTIVE,
            )
            .order_by(Subscriber.id)
        )
    )
    # An immediate run also mails the announcements sent with it to everyone they are for.
    subscriber_ids = sorted({*subscriber_ids, *urgent_recipients(session, period)})
    if subscriber_ids:
        # One bulk INSERT, not an ORM object per delivery: 4-6 s for 20,000 before the
        # first mail could go, now well under one.
        session.execute(
            insert(Delivery),
            [{"run_id": run.id, "subscriber_id": sid, "queued_at": now} for sid in subscriber_ids],
        )
    else:
        run.status = RunStatus.COMPLETE
        run.completed_at = now
    session.flush()
    return StartedRun(run.id, True, chunked(subscriber_ids, chunk_size))


def _find_run(session: Session, period: Period) -> DigestRun | None:
    return session.scalar(
        select(DigestRun).where(
            DigestRun.frequency == period.frequency, DigestRun.period_start == period.start
        )
    )


def chunked(ids: list[int], size: int = CHUNK_SIZE) -> list[list[int]]:
    """Subscriber ids in the chunks one message delivers."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def pending_chunks(
    session: Session,
    run_id: int,
    now: datetime,
    chunk_size: int = CHUNK_SIZE,
    stale: timedelta = claims.STALE_CLAIM,
) -> list[list[int]]:
    """The run's deliveries that a worker could claim now, in chunks (for a process that
    is its own worker and finds a run already started)."""
    ids = session.scalars(
        select(Delivery.subscriber_id)
        .where(Delivery.run_id == run_id, claims.claimable(Delivery, now, stale))
        .order_by(Delivery.subscriber_id)
    ).all()
    return chunked(list(ids), chunk_size)


def mark_queued(session: Session, run_id: int, subscriber_ids: list[int], at: datetime) -> None:
    """Record that these deliveries are handed to the broker in a message due at `at`."""
    session.execute(
        update(Delivery)
        .where(Delivery.run_id == run_id, Delivery.subscriber_id.in_(subscriber_ids))
        .values(queued_at=at)
    )


def requeue_lost(
    session: Session, now: datetime, requeue: Requeue = Requeue()
) -> list[tuple[int, list[int]]]:
    """What the sweep hands to the broker again, in chunks by run, marked queued as of now.

    Deliveries of running runs that are pending, not handed over for `requeue.after` (or
    never) and with their retry time passed; and those claimed longer than `requeue.stale`
    ago, at every sweep until a worker claims them again (a crash is rare, and a message
    too many finds nothing to claim). One conditional update picks and marks them, so two
    sweeps at once hand a lost message's deliveries over once.
    """
    lost_message = and_(
        claims.due(Delivery, now),
        or_(Delivery.queued_at.is_(None), Delivery.queued_at < now - requeue.after),
    )
    lost_worker = claims.stale_claim(Delivery, now, requeue.stale)
    running = select(DigestRun.id).where(DigestRun.status == RunStatus.RUNNING)
    rows = session.execute(
        update(Delivery)
        .where(Delivery.run_id.in_(running), or_(lost_message, lost_worker))
        .values(queued_at=now)
        .returning(Delivery.run_id, Delivery.subscriber_id)
        .execution_options(synchronize_session=False)
    ).all()
    by_run: dict[int, list[int]] = {}
    for run_id, subscriber_id in rows:
        by_run.setdefault(run_id, []).append(subscriber_id)
    return [
        (run_id, chunk)
        for run_id, ids in sorted(by_run.items())
        for chunk in chunked(sorted(ids), requeue.chunk_size)
    ]


def unfinished_chunks(
    session: Session, now: datetime, requeue: Requeue = Requeue()
) -> list[tuple[int, list[int]]]:
    """The sweep's delivery work: requeue what was lost (`requeue_lost`) and complete the
    runs with nothing open."""
    chunks = requeue_lost(session, now, requeue)
    complete_finished(session, now)
    return chunks


def complete_finished(session: Session, now: datetime) -> int:
    """Mark complete every running run with no delivery open; how many."""
    open_delivery = exists().where(Delivery.run_id == DigestRun.id, Delivery.status.in_(OPEN))
    done = session.execute(
        update(DigestRun)
        .where(DigestRun.status == RunStatus.RUNNING, ~open_delivery)
        .values(status=RunStatus.COMPLETE, completed_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(done, "rowcount", 0) or 0)


def missing_periods(session: Session, now: datetime, schedule: Schedule) -> list[Period]:
    """Daily and weekly periods of the catch-up window (`periods.CATCH_UP`) that no run
    covers although runs of that frequency began before them: a start lost with the
    broker, say. (Before a frequency's first run the scheduler starts only the latest
    period.) Any overlap counts as covered, so that a changed schedule (a new hour or
    weekday) never starts a second run for days already sent."""
    missing: list[Period] = []
    for frequency in (Frequency.DAILY, Frequency.WEEKLY):
        first = session.scalar(
            select(func.min(DigestRun.period_start)).where(DigestRun.frequency == frequency)
        )
        if first is None:
            continue
        candidates = missed_periods(frequency, now - CATCH_UP, now, schedule)
        if not candidates:
            continue
        runs = session.execute(
            select(DigestRun.period_start, DigestRun.period_end).where(
                DigestRun.frequency == frequency,
                DigestRun.period_end > candidates[0].start,
            )
        ).all()
        missing.extend(
            period
            for period in candidates
            if period.start >= first
            and not any(start < period.end and period.start < end for start, end in runs)
        )
    return missing


def complete_if_done(session: Session, run_id: int) -> bool:
    open_count = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.run_id == run_id,
            Delivery.status.in_([MailStatus.PENDING, MailStatus.SENDING]),
        )
    )
    if open_count:
        return False
    session.execute(
        update(DigestRun)
        .where(DigestRun.id == run_id, DigestRun.status == RunStatus.RUNNING)
        .values(status=RunStatus.COMPLETE, completed_at=utcnow())
    )
    return True


def wait_for_run(
    sessions: sessionmaker[Session],
    run_id: int,
    progress: Callable[[RunCounts], object] = lambda counts: None,
    timeout: float | None = None,
    interval: float = 1.0,
) -> RunCounts:
    """Wait until the workers have finished run `run_id`, however long (RunNotComplete
    after `timeout` s when one is given), telling `progress` the counts every `interval`
    s; its last counts. Stopping the wait (Ctrl-C) stops nothing else."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with sessions.begin() as session:
            finished = complete_if_done(session, run_id)
            view = run_view(session, run_id)
        counts = view.counts if view is not None else RunCounts(Counter())
        progress(counts)
        if finished or view is None:
            return counts
        if deadline is not None and time.monotonic() >= deadline:
            raise RunNotComplete(run_id, timeout or 0)
        time.sleep(interval)


def last_run_ends(session: Session) -> dict[Frequency, datetime | None]:
    """The end of the latest run of each frequency (None when it never ran)."""
    rows = session.execute(
        select(DigestRun.frequency, func.max(DigestRun.period_end)).group_by(DigestRun.frequency)
    ).all()
    ends: dict[Frequency, datetime | None] = dict.fromkeys(Frequency)
    for frequency, end in rows:
        ends[frequency] = end
    return ends


def run_counts(session: Session, run_id: int) -> Counter[str]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.run_id == run_id)
        .group_by(Delivery.status)
    ).all()
    return Counter({status: count for status, count in rows})


def not_sent(session: Session, run_id: int) -> list[str]:
    """Why the deliveries of a run that failed, or failed for now, were not sent: one line
    each, naming the address."""
    rows = session.execute(
        select(Delivery.subscriber_id, Subscriber.email, Delivery.error)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.run_id == run_id,
            Delivery.status.in_([MailStatus.FAILED, MailStatus.PENDING]),
            Delivery.error.is_not(None),
        )
        .order_by(Delivery.subscriber_id)
    ).all()
    return [f"{email or f'subscriber {sid}'}: {error}" for sid, email, error in rows]


def give_up_at(run: DigestRun) -> datetime:
    """When a delivery of `run` that keeps failing for now fails for good: when the next
    period's digest goes out (counted from the run's start when it was started late)."""
    return max(run.period_end, run.created_at) + (run.period_end - run.period_start)
