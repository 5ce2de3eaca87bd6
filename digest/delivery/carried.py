"""What the public archive keeps of a run, recorded as its digests are recorded sent: when
the first went out (`digest_runs.first_sent_at`) and which announcements went with them
(`run_announcements`). The delivery rows say it too, but they are deleted after
`delivery_retention_days`, and the archive's addresses are linked from the mails for ever."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.core.models import AnnouncementReceipt, Delivery, DigestRun, MailStatus, RunAnnouncement


def _insert(session: Session) -> sqlite.Insert | postgresql.Insert:
    # As claims.dialect_insert (not imported: claims imports outcomes, which imports this).
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(RunAnnouncement)
    return sqlite.insert(RunAnnouncement)


def mark_sent(session: Session, run_id: int, at: datetime) -> None:
    """Run `run_id` sent a digest at `at`: its first, unless one was recorded before."""
    session.execute(
        update(DigestRun)
        .where(DigestRun.id == run_id, DigestRun.first_sent_at.is_(None))
        .values(first_sent_at=at)
        .execution_options(synchronize_session=False)
    )


def record_carried(session: Session, run_id: int, announcement_ids: Collection[int]) -> None:
    """Run `run_id` carried `announcement_ids` to someone; those recorded before stay. In
    one order, so that two workers recording the same ones never wait for each other in
    a circle."""
    if announcement_ids:
        session.execute(
            _insert(session)
            .values([{"run_id": run_id, "announcement_id": a} for a in sorted(announcement_ids)])
            .on_conflict_do_nothing()
        )


def record_replayed(session: Session, delivery_ids: Collection[int]) -> None:
    """The same, read from the deliveries (and their receipts) a journal's replay has just
    recorded sent, whichever runs they belong to (a replay knows only their ids)."""
    if not delivery_ids:
        return
    ids = sorted(delivery_ids)
    sent = and_(Delivery.id.in_(ids), Delivery.status == MailStatus.SENT)
    carried = (
        select(Delivery.run_id, AnnouncementReceipt.announcement_id)
        .join(
            AnnouncementReceipt,
            # By subscriber first: receipts are indexed by subscriber, not by delivery.
            and_(
                AnnouncementReceipt.subscriber_id == Delivery.subscriber_id,
                AnnouncementReceipt.delivery_id == Delivery.id,
            ),
        )
        .where(sent)
        .distinct()
        .order_by(Delivery.run_id, AnnouncementReceipt.announcement_id)
    )
    session.execute(
        _insert(session)
        .from_select(["run_id", "announcement_id"], carried)
        .on_conflict_do_nothing()
    )
    first = (
        select(func.min(Delivery.sent_at))
        .where(sent, Delivery.run_id == DigestRun.id)
        .scalar_subquery()
    )
    session.execute(
        update(DigestRun)
        .where(
            DigestRun.first_sent_at.is_(None),
            DigestRun.id.in_(select(Delivery.run_id).where(sent)),
        )
        .values(first_sent_at=first)
        .execution_options(synchronize_session=False)
    )
