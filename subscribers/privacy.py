"""What the GDPR asks of the people's data: access to it, erasure, and retention limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from subscribers.addresses import normalise_email
from subscribers.models import ConsentEvent, SignupRequest, Status, Subscriber
from subscribers.people import find_by_email
from subscribers.signups import REQUEST_MAX_AGE
from subscribers.suppression import keep_hash

# Unconfirmed sign-ups are deleted this long after their links expired.
PURGE_MARGIN = timedelta(days=1)


def person_record(session: Session, subscriber: Subscriber) -> dict[str, object]:
    """Everything `subscribers` stores about one person, for a GDPR access request."""
    events = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber.id)
        .order_by(ConsentEvent.at, ConsentEvent.id)
    )
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "municipality": subscriber.municipality,
        "role": subscriber.role,
        "role_only": subscriber.role_only,
        "language": subscriber.language,
        "frequency": subscriber.frequency,
        "topics": list(subscriber.topics or []),
        "status": subscriber.status,
        "created_at": subscriber.created_at.isoformat(),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "unsubscribed_at": _iso(subscriber.unsubscribed_at),
        "suppressed_at": _iso(subscriber.suppressed_at),
        "suppressed_reason": subscriber.suppressed_reason,
        "soft_failures": subscriber.soft_failures,
        "consent_events": [
            {"at": e.at.isoformat(), "action": e.action, "channel": e.channel, "detail": e.detail}
            for e in events
        ],
        "signup_requests": [
            {"created_at": r.created_at.isoformat(), "channel": r.channel, "choices": r.choices}
            for r in session.scalars(
                select(SignupRequest)
                .where(SignupRequest.subscriber_id == subscriber.id)
                .order_by(SignupRequest.created_at, SignupRequest.id)
            )
        ],
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def erase(session: Session, secret_key: str, email: str, reason: str = "erased on request") -> bool:
    """Remove everything about the person; keep only a salted hash so they are not mailed."""
    subscriber = find_by_email(session, email)
    keep_hash(session, secret_key, normalise_email(email), reason)
    if subscriber is None:
        return False
    session.delete(subscriber)
    session.flush()
    return True


def purge_unsubscribed(session: Session, secret_key: str, before: datetime) -> int:
    """Erase people who left before `before` (the retention period); returns how many."""
    gone = session.scalars(
        select(Subscriber).where(
            Subscriber.status == Status.UNSUBSCRIBED, Subscriber.unsubscribed_at < before
        )
    ).all()
    for subscriber in gone:
        erase(session, secret_key, subscriber.email, "unsubscribed; data deleted after retention")
    return len(gone)


@dataclass(frozen=True, slots=True)
class Purged:
    requests: int  # sign-up requests whose link had expired
    people: int  # addresses nobody confirmed


def purge_unconfirmed(session: Session, secret_key: str, now: datetime) -> Purged:
    """Delete sign-ups nobody confirmed, a margin after their links expired.

    Expired requests go first; then people who never confirmed and have no request left:
    a pending sign-up is simply deleted, while one that was suppressed meanwhile (or a
    pending row from before requests, which had once confirmed) is erased, keeping the
    salted hash so the address is not mailed again. A person who confirmed once and has
    since left is not touched here: `purge_unsubscribed` keeps them for the retention time.
    """
    cutoff = now - REQUEST_MAX_AGE - PURGE_MARGIN
    expired = SignupRequest.created_at < cutoff
    requests = session.scalar(select(func.count()).select_from(SignupRequest).where(expired)) or 0
    if requests:
        session.execute(delete(SignupRequest).where(expired))
    waiting = session.scalars(
        select(Subscriber).where(
            Subscriber.created_at < cutoff,
            ~exists().where(SignupRequest.subscriber_id == Subscriber.id),
            or_(
                Subscriber.status == Status.PENDING,
                and_(
                    Subscriber.status == Status.SUPPRESSED,
                    Subscriber.confirmed_at.is_(None),
                ),
            ),
        )
    ).all()
    for subscriber in waiting:
        if subscriber.status == Status.PENDING and subscriber.confirmed_at is None:
            session.delete(subscriber)
        else:
            erase(session, secret_key, subscriber.email, "sign-up never confirmed; data deleted")
    session.flush()
    return Purged(requests, len(waiting))
