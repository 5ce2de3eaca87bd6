"""Adding, listing, changing and removing subscribers; one entry point per action."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.addresses import normalise_email
from subscribers.base import utcnow
from subscribers.models import Frequency, Status, Subscriber


class SubscriberError(ValueError):
    """A request about subscribers that cannot be carried out; the message says why."""


def parse_frequency(value: str) -> Frequency:
    try:
        return Frequency(value.strip().lower())
    except ValueError:
        allowed = ", ".join(f.value for f in Frequency)
        raise SubscriberError(f"unknown frequency {value!r} (one of: {allowed})") from None


def clean_topics(topics: Iterable[str], known: set[str] | None = None) -> list[str]:
    cleaned = sorted({t.strip().lower() for t in topics if t and t.strip()})
    if known is not None:
        unknown = [t for t in cleaned if t not in known]
        if unknown:
            raise SubscriberError(f"unknown topic(s): {', '.join(unknown)}")
    return cleaned


def find_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalise_email(email)))


def add_subscriber(
    session: Session,
    email: str,
    *,
    name: str = "",
    municipality: str = "",
    role: str = "",
    frequency: str = Frequency.DAILY.value,
    topics: Iterable[str] = (),
    known_topics: set[str] | None = None,
    confirmed: bool = False,
) -> Subscriber:
    """Create a subscriber; raises InvalidAddress or SubscriberError on bad input."""
    address = normalise_email(email)
    if session.scalar(select(Subscriber.id).where(Subscriber.email == address)) is not None:
        raise SubscriberError(f"{address} is already a subscriber")
    now = utcnow()
    subscriber = Subscriber(
        email=address,
        name=name.strip()[:200],
        municipality=municipality.strip()[:100],
        role=role.strip()[:50],
        frequency=parse_frequency(frequency).value,
        topics=clean_topics(topics, known_topics),
        status=Status.ACTIVE.value if confirmed else Status.PENDING.value,
        created_at=now,
        confirmed_at=now if confirmed else None,
    )
    session.add(subscriber)
    session.flush()
    return subscriber


def list_subscribers(session: Session, status: str | None = None) -> Sequence[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.email)
    if status:
        query = query.where(Subscriber.status == status)
    return session.scalars(query).all()


def remove_subscriber(session: Session, email: str) -> bool:
    subscriber = find_by_email(session, email)
    if subscriber is None:
        return False
    session.delete(subscriber)
    session.flush()
    return True


def unsubscribe(session: Session, subscriber_id: int, email: str) -> Subscriber | None:
    """Unsubscribe the subscriber the token named; idempotent. None if no such subscriber."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email != email:
        return None
    if subscriber.status != Status.UNSUBSCRIBED.value:
        subscriber.status = Status.UNSUBSCRIBED.value
        subscriber.unsubscribed_at = utcnow()
        session.flush()
    return subscriber


def update_preferences(
    subscriber: Subscriber,
    *,
    frequency: str | None = None,
    topics: Iterable[str] | None = None,
    known_topics: set[str] | None = None,
) -> None:
    if frequency is not None:
        subscriber.frequency = parse_frequency(frequency).value
    if topics is not None:
        subscriber.topics = clean_topics(topics, known_topics)
