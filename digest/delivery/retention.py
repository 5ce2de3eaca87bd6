"""Delivery rows are kept `delivery_retention_days` after their run's period (support: «did
she get it?»), then the sweep deletes them, a bounded number at a time.

The run rows stay: one is what makes a period's run unique, and the scheduler reads the
latest period ends from them; a run whose deliveries are gone shows no counts. The public
archive reads none of what goes: a run keeps when it first sent and the announcements it
carried (`carried`). An announcement receipt that named a deleted delivery keeps saying
the announcement was sent (its foreign key is set null by the database), so it is never
sent again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest.core.models import Delivery, DigestRun, MailStatus

# Rows deleted per sweep at most: the first sweep after an upgrade may find years of
# rows, and one sweep must stay a short transaction.
BATCH = 10_000


def delete_old_deliveries(
    session: Session, now: datetime, retention_days: int, limit: int = BATCH
) -> int:
    """Delete up to `limit` settled deliveries of runs whose period ended more than
    `retention_days` ago; how many. Open ones (pending, sending) are left to finish."""
    old_runs = select(DigestRun.id).where(
        DigestRun.period_end < now - timedelta(days=retention_days)
    )
    ids = (
        select(Delivery.id)
        .where(
            Delivery.run_id.in_(old_runs),
            Delivery.status.not_in([MailStatus.PENDING, MailStatus.SENDING]),
        )
        .limit(limit)
    )
    gone = session.execute(
        delete(Delivery)
        .where(Delivery.id.in_(ids.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(gone, "rowcount", 0) or 0)
