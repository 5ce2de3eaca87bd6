"""Figures about the service's state for operators: sources, subscribers, runs, deliveries,
the relay."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from digest.core.models import (
    Change,
    Delivery,
    DigestRun,
    Item,
    MailStatus,
    RelayStatus,
    RunStatus,
    Source,
)
from subscribers.base import utcnow
from subscribers.models import Subscriber

S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class RelayState:
    """The relay as the workers last found it: sending paused until when (None: not paused),
    pauses since the service began, failures in a row."""

    paused_until: datetime | None = None
    pauses: int = 0
    failures_in_row: int = 0


def relay_state(session: Session, now: datetime) -> RelayState:
    row = session.get(RelayStatus, 1)
    if row is None:
        return RelayState()
    paused = row.paused_until if row.paused_until is not None and row.paused_until > now else None
    return RelayState(paused, row.pauses, row.failures_in_row)


@dataclass(slots=True)
class ServiceStatus:
    # Keyed by the statuses' values: they are the labels of the metrics.
    sources_by_status: dict[str, int] = field(default_factory=dict)
    source_failures: dict[str, int] = field(default_factory=dict)
    subscribers_by_status: dict[str, int] = field(default_factory=dict)
    deliveries_by_status: dict[str, int] = field(default_factory=dict)
    runs_unfinished: int = 0
    last_run_end: dict[str, datetime] = field(default_factory=dict)
    items: int = 0
    changes: int = 0
    # Changes by the editors' review: waiting ones are held from every digest.
    changes_by_review: dict[str, int] = field(default_factory=dict)
    sources_paused: int = 0
    changes_by_source: dict[str, int] = field(default_factory=dict)
    # Seconds from the start of the latest run of each frequency to its last mail sent so far.
    latest_run_sending_seconds: dict[str, float] = field(default_factory=dict)
    relay: RelayState = field(default_factory=RelayState)


def _count_by(session: Session, column: InstrumentedAttribute[S]) -> dict[str, int]:
    return {
        value.value: count
        for value, count in session.execute(select(column, func.count()).group_by(column))
    }


def _latest_run_sending_seconds(session: Session) -> dict[str, float]:
    latest = (
        select(DigestRun.frequency, func.max(DigestRun.id).label("run_id"))
        .group_by(DigestRun.frequency)
        .subquery()
    )
    rows = session.execute(
        select(latest.c.frequency, DigestRun.created_at, func.max(Delivery.sent_at))
        .join(DigestRun, DigestRun.id == latest.c.run_id)
        .join(Delivery, Delivery.run_id == DigestRun.id)
        .where(Delivery.status == MailStatus.SENT)
        .group_by(latest.c.frequency, DigestRun.created_at)
    ).all()
    return {
        frequency.value: (last_sent - started).total_seconds()
        for frequency, started, last_sent in rows
        if last_sent is not None
    }


def current_status(session: Session, now: datetime | None = None) -> ServiceStatus:
    enabled = session.execute(
        select(Source.key, Source.status, Source.consecutive_failures).where(
            Source.enabled.is_(True)
        )
    ).all()
    by_status: dict[str, int] = {}
    for _key, status, _failures in enabled:
        by_status[status.value] = by_status.get(status.value, 0) + 1
    return ServiceStatus(
        sources_by_status=by_status,
        source_failures={key: failures for key, _status, failures in enabled},
        subscribers_by_status=_count_by(session, Subscriber.status),
        deliveries_by_status=_count_by(session, Delivery.status),
        runs_unfinished=session.scalar(
            select(func.count()).select_from(DigestRun).where(DigestRun.status == RunStatus.RUNNING)
        )
        or 0,
        last_run_end=dict(
            session.execute(
                select(DigestRun.frequency, func.max(DigestRun.period_end))
                .where(DigestRun.status == RunStatus.COMPLETE)
                .group_by(DigestRun.frequency)
            ).all()
        ),
        items=session.scalar(select(func.count()).select_from(Item)) or 0,
        changes=session.scalar(select(func.count()).select_from(Change)) or 0,
        changes_by_review=_count_by(session, Change.review),
        sources_paused=session.scalar(
            select(func.count()).select_from(Source).where(Source.paused_at.is_not(None))
        )
        or 0,
        changes_by_source=dict(
            session.execute(
                select(Source.key, func.count(Change.id))
                .join(Item, Item.source_id == Source.id)
                .join(Change, Change.item_id == Item.id)
                .group_by(Source.key)
            ).all()
        ),
        latest_run_sending_seconds=_latest_run_sending_seconds(session),
        relay=relay_state(session, now or utcnow()),
    )
