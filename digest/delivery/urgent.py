"""«Send with the next immediate run»: who, besides the immediate subscribers, an
immediate run mails because an announcement marked so is for them and not yet theirs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import AnnouncementReceipt
from digest.core.periods import Period
from digest.delivery.announcements import published_at
from digest.mail.compose import recipient_of
from subscribers.models import Frequency, Status, Subscriber


def urgent_recipients(session: Session, period: Period) -> list[int]:
    """Daily and weekly subscribers an immediate run for `period` must also mail: those
    targeted by an announcement sent with the next immediate run, that went live in this
    period, and that they have not had. (Only that run: later ones leave it to the
    readers' own digests, and do not scan the subscribers every quarter hour.)"""
    if period.frequency != Frequency.IMMEDIATE:
        return []
    urgent = [
        a
        for a in published_at(session, period.end)
        if a.send_immediately and a.went_live is not None and period.contains(a.went_live)
    ]
    if not urgent:
        return []
    had: dict[int, set[int]] = {}
    for announcement_id, subscriber_id in session.execute(
        select(AnnouncementReceipt.announcement_id, AnnouncementReceipt.subscriber_id).where(
            AnnouncementReceipt.announcement_id.in_([a.announcement_id for a in urgent])
        )
    ):
        had.setdefault(subscriber_id, set()).add(announcement_id)
    subscribers = session.scalars(
        select(Subscriber)
        .where(Subscriber.status == Status.ACTIVE, Subscriber.frequency != Frequency.IMMEDIATE)
        .order_by(Subscriber.id)
    )
    chosen = []
    for subscriber in subscribers:
        recipient = recipient_of(subscriber)
        received = had.get(subscriber.id, set())
        if any(a.announcement_id not in received and recipient.is_targeted_by(a) for a in urgent):
            chosen.append(subscriber.id)
    return chosen
