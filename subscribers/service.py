"""Subscribers' lifecycle: sign-up, confirmation, preferences, leaving, suppression, erasure.

One entry point per action; each records a consent event with its channel, so the
history of what a person agreed to, and how, is kept with them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subscribers.addresses import normalise_email
from subscribers.base import utcnow
from subscribers.models import (
    Channel,
    ConsentEvent,
    Frequency,
    Language,
    Role,
    Status,
    Subscriber,
    Suppression,
)
from subscribers.municipalities import find_municipality

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SubscriberError(ValueError):
    """A request about subscribers that cannot be carried out; the message says why."""


def parse_frequency(value: str) -> Frequency:
    try:
        return Frequency(value.strip().lower())
    except ValueError:
        allowed = ", ".join(f.value for f in Frequency)
        raise SubscriberError(f"unknown frequency {value!r} (one of: {allowed})") from None


def parse_role(value: str) -> str:
    value = value.strip().lower()
    if not value:
        return ""
    try:
        return Role(value).value
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise SubscriberError(f"unknown role {value!r} (one of: {allowed})") from None


def parse_language(value: str) -> str:
    value = value.strip().lower() or Language.BOKMAL.value
    try:
        return Language(value).value
    except ValueError:
        allowed = ", ".join(lang.value for lang in Language)
        raise SubscriberError(f"unknown language {value!r} (one of: {allowed})") from None


def parse_municipality(value: str) -> str:
    """The municipality's number, from its number or name; '' when none is given."""
    if not value.strip():
        return ""
    found = find_municipality(value)
    if found is None:
        raise SubscriberError(f"unknown municipality {value.strip()!r}")
    return found.number


def clean_name(value: str) -> str:
    name = " ".join(_CONTROL.sub(" ", value).split())
    if len(name) > 200:
        raise SubscriberError("the name is longer than 200 characters")
    return name


def clean_topics(topics: Iterable[str], known: set[str] | None = None) -> list[str]:
    cleaned = sorted({t.strip().lower() for t in topics if t and t.strip()})
    if known is not None:
        unknown = [t for t in cleaned if t not in known]
        if unknown:
            raise SubscriberError(f"unknown topic(s): {', '.join(unknown)}")
    return cleaned


def address_hash(secret_key: str, email: str) -> str:
    """The salted hash an address is kept as once the person is gone."""
    key = hashlib.sha256(b"digest.suppression:" + secret_key.encode()).digest()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def is_suppressed(session: Session, secret_key: str, email: str) -> bool:
    digest = address_hash(secret_key, email)
    return (
        session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is not None
    )


def record(
    session: Session, subscriber: Subscriber, action: str, channel: Channel | str, detail: str = ""
) -> None:
    session.add(
        ConsentEvent(
            subscriber_id=subscriber.id,
            at=utcnow(),
            action=action,
            channel=str(channel),
            detail=detail[:2000],
        )
    )


def find_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalise_email(email)))


@dataclass(frozen=True, slots=True)
class Choices:
    """What a person chooses, already checked (see `choices`)."""

    name: str = ""
    municipality: str = ""  # number
    role: str = ""
    frequency: str = Frequency.DAILY.value
    topics: tuple[str, ...] = ()
    language: str = Language.BOKMAL.value


def choices(
    *,
    name: str = "",
    municipality: str = "",
    role: str = "",
    frequency: str = Frequency.DAILY.value,
    topics: Iterable[str] = (),
    language: str = "",
    known_topics: set[str] | None = None,
) -> Choices:
    """Check a person's choices; raises SubscriberError naming the first bad one."""
    return Choices(
        name=clean_name(name),
        municipality=parse_municipality(municipality),
        role=parse_role(role),
        frequency=parse_frequency(frequency).value,
        topics=tuple(clean_topics(topics, known_topics)),
        language=parse_language(language),
    )


def apply_choices(subscriber: Subscriber, chosen: Choices) -> bool:
    """Set the chosen preferences on a subscriber; True if anything changed."""
    changed = False
    for field in ("name", "municipality", "role", "frequency", "language"):
        if getattr(subscriber, field) != getattr(chosen, field):
            setattr(subscriber, field, getattr(chosen, field))
            changed = True
    if list(subscriber.topics or []) != list(chosen.topics):
        subscriber.topics = list(chosen.topics)
        changed = True
    return changed


def new_subscriber(email: str, chosen: Choices, *, confirmed: bool) -> Subscriber:
    """A Subscriber row for an address already normalised and checked to be new."""
    now = utcnow()
    subscriber = Subscriber(
        email=email,
        status=Status.ACTIVE.value if confirmed else Status.PENDING.value,
        created_at=now,
        confirmed_at=now if confirmed else None,
        confirm_nonce=secrets.token_hex(8),
        soft_failures=0,
        topics=[],
    )
    apply_choices(subscriber, chosen)
    return subscriber


def add_subscriber(
    session: Session,
    email: str,
    chosen: Choices,
    *,
    confirmed: bool = False,
    channel: Channel = Channel.ADMIN,
    basis: str = "",
) -> Subscriber:
    """Create a subscriber; raises InvalidAddress or SubscriberError on bad input."""
    address = normalise_email(email)
    if session.scalar(select(Subscriber.id).where(Subscriber.email == address)) is not None:
        raise SubscriberError(f"{address} is already a subscriber")
    subscriber = new_subscriber(address, chosen, confirmed=confirmed)
    session.add(subscriber)
    session.flush()
    record(session, subscriber, "subscribed", channel, basis)
    if confirmed:
        record(session, subscriber, "confirmed", channel, basis)
    return subscriber


@dataclass(frozen=True, slots=True)
class SignUp:
    subscriber: Subscriber
    # "confirm": send a confirmation link; "already": send the manage link instead.
    send: str


def sign_up(
    session: Session, email: str, chosen: Choices, channel: Channel = Channel.WEB
) -> SignUp:
    """A sign-up through the public form; the same outcome is shown whoever the address is.

    An active subscriber's choices are not changed by a form anyone could fill in; they
    get a mail with their manage link instead.
    """
    address = normalise_email(email)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        return SignUp(add_subscriber(session, address, chosen, channel=channel), "confirm")
    if subscriber.status == Status.ACTIVE.value:
        return SignUp(subscriber, "already")
    # Pending, unsubscribed or suppressed: this is a new request for consent.
    apply_choices(subscriber, chosen)
    subscriber.status = Status.PENDING.value
    subscriber.confirm_nonce = secrets.token_hex(8)
    record(session, subscriber, "subscribed", channel)
    return SignUp(subscriber, "confirm")


def confirm(
    session: Session, secret_key: str, subscriber_id: int, email: str, nonce: str
) -> tuple[str, Subscriber | None]:
    """("confirmed" | "already" | "used" | "unknown", subscriber) for a confirm link."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email != email:
        return "unknown", None
    if subscriber.confirm_nonce != nonce:
        return ("already" if subscriber.status == Status.ACTIVE.value else "used"), subscriber
    now = utcnow()
    subscriber.status = Status.ACTIVE.value
    subscriber.confirmed_at = now
    subscriber.unsubscribed_at = None
    subscriber.suppressed_at = None
    subscriber.suppressed_reason = None
    subscriber.soft_failures = 0
    subscriber.confirm_nonce = secrets.token_hex(8)  # the link is used up
    # Consent given anew lifts an earlier suppression of this address.
    session.execute(
        delete(Suppression).where(
            Suppression.address_hash == address_hash(secret_key, subscriber.email)
        )
    )
    record(session, subscriber, "confirmed", Channel.WEB)
    return "confirmed", subscriber


def update_preferences(
    session: Session, subscriber: Subscriber, chosen: Choices, channel: Channel = Channel.WEB
) -> bool:
    changed = apply_choices(subscriber, chosen)
    if changed:
        record(
            session,
            subscriber,
            "preferences",
            channel,
            f"frequency={chosen.frequency}; topics={','.join(chosen.topics) or 'all'}; "
            f"language={chosen.language}",
        )
    return changed


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


def unsubscribe(
    session: Session, subscriber_id: int, email: str, channel: Channel = Channel.WEB
) -> Subscriber | None:
    """Unsubscribe the subscriber a token named; idempotent. None if no such subscriber."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email != email:
        return None
    if subscriber.status in (Status.ACTIVE.value, Status.PENDING.value):
        subscriber.status = Status.UNSUBSCRIBED.value
        subscriber.unsubscribed_at = utcnow()
        subscriber.confirm_nonce = secrets.token_hex(8)  # old confirm links stop working
        record(session, subscriber, "unsubscribed", channel)
        session.flush()
    return subscriber


def suppress(session: Session, subscriber: Subscriber, reason: str) -> None:
    """Never mail this address again (until the person confirms a new sign-up)."""
    if subscriber.status == Status.SUPPRESSED.value:
        return
    subscriber.status = Status.SUPPRESSED.value
    subscriber.suppressed_at = utcnow()
    subscriber.suppressed_reason = reason[:500]
    subscriber.confirm_nonce = secrets.token_hex(8)
    record(session, subscriber, "suppressed", Channel.SYSTEM, reason)


def delivery_failed(
    session: Session, subscriber: Subscriber, reason: str, *, permanent: bool, soft_limit: int
) -> None:
    """Count one failed delivery; a permanent one, or `soft_limit` soft ones in a row,
    suppresses. The caller counts a temporary refusal once per delivery, not per attempt,
    and only when it is the recipient's (the relay accepted others)."""
    if permanent:
        suppress(session, subscriber, f"permanent delivery failure: {reason}")
        return
    subscriber.soft_failures = (subscriber.soft_failures or 0) + 1
    if subscriber.soft_failures >= soft_limit:
        suppress(
            session,
            subscriber,
            f"{subscriber.soft_failures} temporary delivery failures in a row: {reason}",
        )


def delivered(subscriber: Subscriber) -> None:
    """A mail reached the person: the soft bounces in a row start again from zero."""
    subscriber.soft_failures = 0


def erase(session: Session, secret_key: str, email: str, reason: str = "erased on request") -> bool:
    """Remove everything about the person; keep only a salted hash so they are not mailed."""
    subscriber = find_by_email(session, email)
    digest = address_hash(secret_key, normalise_email(email))
    if session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is None:
        session.add(Suppression(address_hash=digest, reason=reason, created_at=utcnow()))
    if subscriber is None:
        return False
    session.delete(subscriber)
    session.flush()
    return True


def purge_unsubscribed(session: Session, secret_key: str, before: datetime) -> int:
    """Erase people who left before `before` (the retention period); returns how many."""
    gone = session.scalars(
        select(Subscriber).where(
            Subscriber.status == Status.UNSUBSCRIBED.value, Subscriber.unsubscribed_at < before
        )
    ).all()
    for subscriber in gone:
        erase(session, secret_key, subscriber.email, "unsubscribed; data deleted after retention")
    return len(gone)


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
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
