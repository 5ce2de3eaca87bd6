"""DigestRun and Delivery lifecycle: start a run and fan it out in chunks, find what is
unfinished, close a run, and wait for one; what each delivery sends is in `digests`.

The database is the truth: a run is unique per (frequency, period) and a delivery per
(run, subscriber); a delivery is claimed with a conditional update, so two workers
never send the same digest, and a lost message is found again by `unfinished_chunks`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from digest.core.errors import DigestError
from digest.core.models import Delivery, DigestRun, MailStatus, RunStatus
from digest.core.periods import Period
from digest.delivery import claims, sending
from digest.delivery.urgent import urgent_recipients
from subscribers.base import utcnow
from subscribers.models import Frequency, Status, Subscriber

CHUNK_SIZE = 100


class RunNotComplete(DigestError):
    """A run still had deliveries open when its waiter stopped waiting."""

    def __init__(self, run_id: int, timeout: float) -> None:
        super().__init__(f"run {run_id} not complete after {timeout:g} s")
        self.run_id = run_id
        self.timeout = timeout


@dataclass(slots=True)
class StartedRun:
    run_id: int
    created: bool
    chunks: list[list[int]] = field(default_factory=list)


def start_run(session: Session, period: Period) -> StartedRun:
    """Create the run and its deliveries (one per active subscriber of its frequency, and
    in an immediate run one per subscriber an urgent announcement is for), or find the
    existing run."""
    existing = _find_run(session, period)
    if existing is not None:
        return StartedRun(existing.id, False, pending_chunks(session, existing.id, utcnow()))
    try:
        with session.begin_nested():
            run = DigestRun(
                frequency=period.frequency,
                period_start=period.start,
                period_end=period.end,
                status=RunStatus.RUNNING,
                created_at=utcnow(),
            )
            session.add(run)
            session.flush()
    except IntegrityError:
        # Another process started the same run first; theirs is the one.
        theirs = _find_run(session, period)
        assert theirs is not None
        return StartedRun(theirs.id, False, pending_chunks(session, theirs.id, utcnow()))
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
    session.add_all(Delivery(run_id=run.id, subscriber_id=sid) for sid in subscriber_ids)
    if not subscriber_ids:
        run.status = RunStatus.COMPLETE
        run.completed_at = utcnow()
    session.flush()
    return StartedRun(run.id, True, chunked(subscriber_ids))


def _find_run(session: Session, period: Period) -> DigestRun | None:
    return session.scalar(
        select(DigestRun).where(
            DigestRun.frequency == period.frequency, DigestRun.period_start == period.start
        )
    )


def chunked(ids: list[int]) -> list[list[int]]:
    """Subscriber ids in the chunks one message delivers."""
    return [ids[i : i + CHUNK_SIZE] for i in range(0, len(ids), CHUNK_SIZE)]


def pending_chunks(session: Session, run_id: int, now: datetime) -> list[list[int]]:
    ids = session.scalars(
        select(Delivery.subscriber_id)
        .where(Delivery.run_id == run_id, claims.claimable(Delivery, now))
        .order_by(Delivery.subscriber_id)
    ).all()
    return chunked(list(ids))


def unfinished_chunks(session: Session, now: datetime) -> list[tuple[int, list[int]]]:
    """What the recovery sweep re-enqueues: claimable deliveries of runs not just started."""
    run_ids = session.scalars(
        select(DigestRun.id).where(
            DigestRun.status == RunStatus.RUNNING,
            DigestRun.created_at < now - claims.STALE_CLAIM,
        )
    ).all()
    result: list[tuple[int, list[int]]] = []
    for run_id in run_ids:
        chunks = pending_chunks(session, run_id, now)
        if chunks:
            result.extend((run_id, chunk) for chunk in chunks)
        else:
            complete_if_done(session, run_id)
    return result


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


def wait_for_run(sessions: sessionmaker[Session], run_id: int, timeout: float) -> None:
    """Wait until the workers have finished run `run_id`; RunNotComplete after `timeout` s."""
    if not sending.poll_until(sessions, lambda session: complete_if_done(session, run_id), timeout):
        raise RunNotComplete(run_id, timeout)


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
