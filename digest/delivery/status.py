"""Figures about the service's state for operators: sources, subscribers, runs, deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from digest.core.models import Change, Delivery, DigestRun, Item, RunStatus, Source
from subscribers.models import Subscriber

S = TypeVar("S", bound=StrEnum)


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


def _count_by(session: Session, column: InstrumentedAttribute[S]) -> dict[str, int]:
    return {
        value.value: count
        for value, count in session.execute(select(column, func.count()).group_by(column))
    }


def current_status(session: Session) -> ServiceStatus:
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
    )
