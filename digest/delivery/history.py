"""Digest runs and their deliveries as operators see them: each run with its counts and
progress, and one run's deliveries, searched by address and filtered by status, a page
at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from digest.core.models import Delivery, DigestRun, MailStatus, RunStatus
from subscribers.models import Frequency, Subscriber

OPEN = (MailStatus.PENDING, MailStatus.SENDING)
SKIPPED = (MailStatus.SKIPPED_EMPTY, MailStatus.SKIPPED_INACTIVE)


@dataclass(frozen=True, slots=True)
class RunCounts:
    """A run's deliveries by where they stand."""

    by_status: Counter[str]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def sent(self) -> int:
        return self.by_status[MailStatus.SENT]

    @property
    def skipped(self) -> int:
        return sum(self.by_status[s] for s in SKIPPED)

    @property
    def failed(self) -> int:
        return self.by_status[MailStatus.FAILED]

    @property
    def pending(self) -> int:
        return self.by_status[MailStatus.PENDING]

    @property
    def sending(self) -> int:
        return self.by_status[MailStatus.SENDING]

    @property
    def done(self) -> int:
        """Deliveries settled one way or another (sent, skipped or failed)."""
        return self.total - self.pending - self.sending


@dataclass(frozen=True, slots=True)
class RunView:
    id: int
    frequency: Frequency
    period_start: datetime
    period_end: datetime
    status: RunStatus
    created_at: datetime
    completed_at: datetime | None
    counts: RunCounts


def _view(run: DigestRun, counts: Counter[str]) -> RunView:
    return RunView(
        run.id,
        run.frequency,
        run.period_start,
        run.period_end,
        run.status,
        run.created_at,
        run.completed_at,
        RunCounts(counts),
    )


def _counts(session: Session, run_ids: Sequence[int]) -> dict[int, Counter[str]]:
    counts: dict[int, Counter[str]] = {run_id: Counter() for run_id in run_ids}
    rows = session.execute(
        select(Delivery.run_id, Delivery.status, func.count())
        .where(Delivery.run_id.in_(run_ids))
        .group_by(Delivery.run_id, Delivery.status)
    ).all()
    for run_id, status, count in rows:
        counts[run_id][str(status)] = count
    return counts


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a longer list: its rows, its number (from 1) and whether more follow."""

    rows: list[T]
    number: int
    has_next: bool
    total: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def recent_runs(session: Session, page: int = 1, per_page: int = 50) -> Page[RunView]:
    """Runs newest first (by the end of their period), with their counts."""
    page = max(page, 1)
    total = session.scalar(select(func.count()).select_from(DigestRun)) or 0
    runs = session.scalars(
        select(DigestRun)
        .order_by(DigestRun.period_end.desc(), DigestRun.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    counts = _counts(session, [r.id for r in runs])
    views = [_view(r, counts[r.id]) for r in runs]
    return Page(views, page, page * per_page < total, total)


def run_view(session: Session, run_id: int) -> RunView | None:
    run = session.get(DigestRun, run_id)
    if run is None:
        return None
    return _view(run, _counts(session, [run.id])[run.id])


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    subscriber_id: int
    email: str | None  # None when the person's data has been erased meanwhile
    status: MailStatus
    attempts: int
    sent_at: datetime | None
    claimed_at: datetime | None
    item_count: int
    error: str | None


def deliveries(
    session: Session,
    run_id: int,
    *,
    address: str = "",
    statuses: Sequence[MailStatus] = (),
    page: int = 1,
    per_page: int = 50,
) -> Page[DeliveryView]:
    """The deliveries of a run by address: those whose address contains `address` (any
    case) and whose status is one of `statuses` (all when empty)."""
    page = max(page, 1)
    where: list[ColumnElement[bool]] = [Delivery.run_id == run_id]
    if address:
        # Its own `%` and `_` are plain characters (autoescape), as subscribers.search does.
        where.append(Subscriber.email.icontains(address, autoescape=True))
    if statuses:
        where.append(Delivery.status.in_(list(statuses)))
    base = select(Delivery, Subscriber.email).outerjoin(
        Subscriber, Subscriber.id == Delivery.subscriber_id
    )
    total = (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(*where)
        )
        or 0
    )
    rows = session.execute(
        base.where(*where)
        .order_by(Subscriber.email, Delivery.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    views = [
        DeliveryView(
            d.id,
            d.subscriber_id,
            email,
            MailStatus(d.status),
            d.attempts,
            d.sent_at,
            d.claimed_at,
            d.item_count,
            d.error,
        )
        for d, email in rows
    ]
    return Page(views, page, page * per_page < total, total)
