"""«Retry failed»: an admin sends the failed deliveries of a run again.

A failed delivery whose subscriber is still active goes back to pending with its attempts
counted from nought, and the run is running again until they are settled. Counting from
nought is what lets a retry of an old run go out at all: the claim fails a delivery as
overdue only when it was tried before (`claims.overdue`: attempts > 1) and the next
period's digest has gone out, so a retried delivery gets one fresh try. If that try is
refused for now, it fails again at once when its run is that old (the give-up time has
passed); a retry is one more try, not a new round of them. Its last error is kept until
the new outcome replaces it.

Deliveries to people who left or were suppressed since are not retried: they would be
skipped at once, and a suppressed address must never be mailed. `Retry.left` says how
many stay failed, by the person's status now.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest.core.models import Delivery, DigestRun, MailStatus, RunStatus
from digest.delivery.runs import CHUNK_SIZE, chunked
from subscribers.base import utcnow
from subscribers.models import Status, Subscriber


@dataclass(slots=True)
class Retry:
    """What a retry did: the subscriber ids to deliver to, in chunks (enqueue them after the
    commit), how many deliveries it put back, and the failed ones it left, by the status
    of their subscriber now (`unsubscribed`, `suppressed`, `pending`)."""

    chunks: list[list[int]] = field(default_factory=list)
    retried: int = 0
    left: Counter[str] = field(default_factory=Counter)
    reopened: bool = False  # the run was complete and is running again


def not_retryable(session: Session, run_id: int) -> Counter[str]:
    """The failed deliveries of a run that a retry would leave, by their subscriber's status."""
    rows = session.execute(
        select(Subscriber.status, Delivery.id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.run_id == run_id,
            Delivery.status == MailStatus.FAILED,
            Subscriber.status != Status.ACTIVE,
        )
    ).all()
    return Counter(str(status) for status, _ in rows)


def retryable(session: Session, run_id: int) -> list[int]:
    """The subscriber ids of the run's failed deliveries that a retry would send again."""
    return list(
        session.scalars(
            select(Delivery.subscriber_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(
                Delivery.run_id == run_id,
                Delivery.status == MailStatus.FAILED,
                Subscriber.status == Status.ACTIVE,
            )
            .order_by(Delivery.subscriber_id)
        )
    )


def retry_failed(session: Session, run: DigestRun, chunk_size: int = CHUNK_SIZE) -> Retry:
    """Put the run's failed deliveries to active subscribers back to pending, in the
    caller's transaction, queued as of now (the caller enqueues `chunks` after its
    commit), and the run back to running if it was complete."""
    result = Retry(left=not_retryable(session, run.id))
    ids = retryable(session, run.id)
    if not ids:
        return result
    # Conditional, so that two admins pressing at once put each delivery back once.
    changed = session.execute(
        update(Delivery)
        .where(
            Delivery.run_id == run.id,
            Delivery.status == MailStatus.FAILED,
            Delivery.subscriber_id.in_(ids),
        )
        .values(
            status=MailStatus.PENDING,
            attempts=0,
            claimed_at=None,
            retry_at=None,
            queued_at=utcnow(),
        )
    )
    result.retried = int(getattr(changed, "rowcount", 0) or 0)
    if not result.retried:
        return result
    if run.status == RunStatus.COMPLETE:
        run.status = RunStatus.RUNNING
        run.completed_at = None
        result.reopened = True
    result.chunks = chunked(ids, chunk_size)
    return result
