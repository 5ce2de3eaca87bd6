"""Finding a person, the history of their consent, and changing what they chose.

Every action on a person records a consent event with its channel (`record`), so the
history of what a person agreed to, and how, is kept with them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.addresses import normalise_email
from subscribers.base import utcnow
from subscribers.choices import Choices, apply_choices, role_only_for_new, summary
from subscribers.errors import UnknownSubscriber
from subscribers.models import Channel, ConsentAction, ConsentEvent, Status, Subscriber
from subscribers.text import clean_line
from subscribers.tokens import BadToken, read_legacy_token, read_token


def find_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalise_email(email)))


def get_by_email(session: Session, email: str) -> Subscriber:
    """The subscriber with this address, or UnknownSubscriber."""
    subscriber = find_by_email(session, email)
    if subscriber is None:
        raise UnknownSubscriber(email)
    return subscriber


def find_by_ref(session: Session, ref: str) -> Subscriber | None:
    """The subscriber a manage or unsubscribe link names."""
    return session.scalar(select(Subscriber).where(Subscriber.ref == ref))


def by_link(session: Session, secret_key: str, purpose: str, token: str) -> Subscriber:
    """The subscriber a manage or unsubscribe link names, or BadToken.

    Links made before links became opaque name an id and an address; they are honoured
    while the address still matches the row, so leaving stays one click away.
    """
    try:
        subscriber = find_by_ref(session, read_token(secret_key, purpose, token))
    except BadToken:
        subscriber_id, email = read_legacy_token(secret_key, purpose, token)
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is not None and subscriber.email != email:
            subscriber = None
    if subscriber is None:
        raise BadToken("the link names nobody")
    return subscriber


def list_subscribers(session: Session, status: Status | None = None) -> Sequence[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.email)
    if status:
        query = query.where(Subscriber.status == status)
    return session.scalars(query).all()


def record(
    session: Session,
    subscriber: Subscriber,
    action: ConsentAction,
    channel: Channel,
    detail: str = "",
) -> None:
    session.add(
        ConsentEvent(
            subscriber_id=subscriber.id,
            at=utcnow(),
            action=action,
            channel=channel,
            # Details come from people (a basis typed at the CLI) and relays (bounce replies).
            detail=clean_line(detail, 2000),
        )
    )


def record_joined(
    session: Session, subscriber: Subscriber, channel: Channel, basis: str, *, confirmed: bool
) -> None:
    """The consent a new person comes in with: subscribed, and confirmed when consent was
    obtained elsewhere (`basis` says how)."""
    record(session, subscriber, ConsentAction.SUBSCRIBED, channel, basis)
    if confirmed:
        record(session, subscriber, ConsentAction.CONFIRMED, channel, basis)


def new_subscriber(email: str, chosen: Choices, *, confirmed: bool) -> Subscriber:
    """A Subscriber row for an address already normalised and checked to be new."""
    now = utcnow()
    subscriber = Subscriber(
        email=email,
        status=Status.ACTIVE if confirmed else Status.PENDING,
        created_at=now,
        confirmed_at=now if confirmed else None,
        soft_failures=0,
        topics=[],
    )
    apply_choices(subscriber, chosen)
    subscriber.role_only = role_only_for_new(chosen)
    return subscriber


def update_preferences(
    session: Session, subscriber: Subscriber, chosen: Choices, channel: Channel = Channel.WEB
) -> bool:
    changed = apply_choices(subscriber, chosen)
    if changed:
        record(session, subscriber, ConsentAction.PREFERENCES, channel, summary(chosen))
    return changed


def remove_subscriber(session: Session, email: str) -> None:
    """Delete a subscriber (and, by cascade, what hangs on them); UnknownSubscriber if none."""
    session.delete(get_by_email(session, email))
    session.flush()
