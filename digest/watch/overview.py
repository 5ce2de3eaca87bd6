"""The sources as operators see them: health and item count of each, whether an operator
paused it and whether its changes wait for review, for `digest sources list` and the
admins' sources page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.core.models import Item, Source, SourceStatus


@dataclass(frozen=True, slots=True)
class SourceHealth:
    key: str
    kind: str
    enabled: bool
    status: str  # "disabled" for a disabled source, whatever its last pass said
    http_status: int | None
    last_checked_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    items: int
    next_check_at: datetime | None
    error: str | None
    warning: str | None
    id: int
    name: str
    paused_at: datetime | None  # paused by an operator: not collected until resumed
    # «Review before sending» as the sources file says, as set in the UI (None: as the
    # file says), and the two together.
    review_in_file: bool
    review_override: bool | None
    review_before_sending: bool  # as Source.review_before_sending decides

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


def source_health(session: Session) -> list[SourceHealth]:
    """Every source, by key, with its health and the number of items it has."""
    query = select(Item.source_id, func.count()).group_by(Item.source_id)
    counts = {source_id: count for source_id, count in session.execute(query)}
    return [
        SourceHealth(
            key=s.key,
            kind=s.kind,
            enabled=s.enabled,
            status=s.status if s.enabled else SourceStatus.DISABLED,
            http_status=s.http_status,
            last_checked_at=s.last_checked_at,
            last_success_at=s.last_success_at,
            consecutive_failures=s.consecutive_failures,
            items=counts.get(s.id, 0),
            next_check_at=s.next_check_at,
            error=s.error,
            warning=s.warning,
            id=s.id,
            name=s.name,
            paused_at=s.paused_at,
            review_in_file=s.review_in_file,
            review_override=s.review_override,
            review_before_sending=s.review_before_sending,
        )
        for s in session.scalars(select(Source).order_by(Source.key))
    ]
