"""Which detected changes go out, as SQL expressions: those sent without review, in the
period of their detection, and those an editor approved, in the period of the approval;
never the waiting or hidden ones. The one statement of that rule: `digests.changes_in`
asks it of one period, the public archive and feeds of many runs in one query."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, case, or_

from digest.core.models import Change, ChangeReview

# The review states whose changes go out (each in its own period, see `sendable_between`).
SENDABLE = (ChangeReview.AUTO, ChangeReview.APPROVED)


def released_at() -> ColumnElement[datetime]:
    """When a sendable change went out: an approved one when approved, others when detected."""
    return case(
        (Change.review == ChangeReview.APPROVED, Change.reviewed_at), else_=Change.detected_at
    )


def sendable_between(
    start: datetime | SQLColumnExpression[datetime], end: datetime | SQLColumnExpression[datetime]
) -> ColumnElement[bool]:
    """The changes a digest of the period [start, end) may hold (`start` and `end` may be a
    run's columns, for a correlated query over many runs)."""
    return or_(
        and_(
            Change.review == ChangeReview.AUTO,
            Change.detected_at >= start,
            Change.detected_at < end,
        ),
        and_(
            Change.review == ChangeReview.APPROVED,
            Change.reviewed_at >= start,
            Change.reviewed_at < end,
        ),
    )
