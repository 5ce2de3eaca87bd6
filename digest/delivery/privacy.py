"""What the service holds about one person, gathered for a GDPR access request."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import AnnouncementReceipt, Delivery, DigestRun, Notice
from subscribers.models import Subscriber
from subscribers.privacy import person_record


def person_export(session: Session, subscriber: Subscriber) -> dict[str, object]:
    data = person_record(session, subscriber)
    deliveries = session.execute(
        select(Delivery, DigestRun)
        .join(DigestRun, Delivery.run_id == DigestRun.id)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(DigestRun.period_end)
    ).all()
    data["deliveries"] = [
        {
            "frequency": run.frequency,
            "period_start": run.period_start.isoformat(),
            "period_end": run.period_end.isoformat(),
            "status": d.status,
            "sent_at": d.sent_at.isoformat() if d.sent_at else None,
            "items": d.item_count,
        }
        for d, run in deliveries
    ]
    notices = session.scalars(
        select(Notice).where(Notice.subscriber_id == subscriber.id).order_by(Notice.created_at)
    )
    data["notices"] = [
        {
            "kind": n.kind,
            "status": n.status,
            "created_at": n.created_at.isoformat(),
            "sent_at": n.sent_at.isoformat() if n.sent_at else None,
        }
        for n in notices
    ]
    data["announcements_received"] = list(
        session.scalars(
            select(AnnouncementReceipt.announcement_id).where(
                AnnouncementReceipt.subscriber_id == subscriber.id
            )
        )
    )
    return data
