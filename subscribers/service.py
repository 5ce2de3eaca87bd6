"""Subscribers' lifecycle: sign-up, confirmation, preferences, leaving, suppression, erasure.

One entry point per action; each records a consent event with its channel, so the
history of what a person agreed to, and how, is kept with them. A sign-up for an address
that is already known changes nothing about that person: what it asks for waits in a
`SignupRequest` until the owner confirms it from their own mailbox.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from subscribers.addresses import normalise_email
from subscribers.base import utcnow
from subscribers.models import (
    Channel,
    ConsentEvent,
    Frequency,
    Language,
    NoticeKind,
    Role,
    SignupRequest,
    Status,
    Subscriber,
    Suppression,
)
from subscribers.municipalities import find_municipality
from subscribers.text import clean_line
from subscribers.tokens import CONFIRM_MAX_AGE

# A confirm link works this long; an unconfirmed sign-up is deleted a margin after that.
REQUEST_MAX_AGE = timedelta(seconds=CONFIRM_MAX_AGE)
PURGE_MARGIN = timedelta(days=1)
# Open requests kept per person. Past this a sign-up drops the oldest, so that nobody can
# pile requests (and their text) onto an address.
MAX_OPEN_REQUESTS = 5
# Soft bounces closer together than this count as one.
SOFT_BOUNCE_SPACING = timedelta(hours=20)


class SubscriberError(ValueError):
    """A request about subscribers that cannot be carried out; the message says why."""


def parse_frequency(value: str) -> Frequency:
    try:
        return Frequency(clean_line(value).lower())
    except ValueError:
        allowed = ", ".join(f.value for f in Frequency)
        raise SubscriberError(f"unknown frequency {value!r} (one of: {allowed})") from None


def parse_role(value: str) -> str:
    value = clean_line(value).lower()
    if not value:
        return ""
    try:
        return Role(value).value
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise SubscriberError(f"unknown role {value!r} (one of: {allowed})") from None


def parse_language(value: str) -> str:
    value = clean_line(value).lower() or Language.BOKMAL.value
    try:
        return Language(value).value
    except ValueError:
        allowed = ", ".join(lang.value for lang in Language)
        raise SubscriberError(f"unknown language {value!r} (one of: {allowed})") from None


def parse_municipality(value: str) -> str:
    """The municipality's number, from its number or name; '' when none is given."""
    value = clean_line(value)
    if not value:
        return ""
    found = find_municipality(value)
    if found is None:
        raise SubscriberError(f"unknown municipality {value!r}")
    return found.number


def clean_text(value: str, limit: int, what: str) -> str:
    """One line of safe text from a form, the CLI or a roster (see `subscribers.text`):
    encoded words decoded, control, line-break, bidi and zero-width characters removed.
    Raises SubscriberError when it is longer than `limit`, rather than cutting it."""
    text = clean_line(value)
    if len(text) > limit:
        raise SubscriberError(f"the {what} is longer than {limit} characters")
    return text


def clean_name(value: str) -> str:
    return clean_text(value, 200, "name")


def clean_topics(topics: Iterable[str], known: set[str] | None = None) -> list[str]:
    cleaned = sorted({clean_line(t).lower() for t in topics if t and clean_line(t)})
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
            # Details come from people (a basis typed at the CLI) and relays (bounce replies).
            detail=clean_line(detail, 2000),
        )
    )


def find_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalise_email(email)))


def find_by_ref(session: Session, ref: str) -> Subscriber | None:
    """The subscriber a manage or unsubscribe link names."""
    return session.scalar(select(Subscriber).where(Subscriber.ref == ref))


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
        status=Status.ACTIVE if confirmed else Status.PENDING,
        created_at=now,
        confirmed_at=now if confirmed else None,
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
    """Create a subscriber; raises InvalidAddress or SubscriberError on bad input.

    Unless `confirmed`, the person is pending with an open request (`latest_request`)
    for the confirmation mail to name.
    """
    address = normalise_email(email)
    if session.scalar(select(Subscriber.id).where(Subscriber.email == address)) is not None:
        raise SubscriberError(f"{address} is already a subscriber")
    subscriber = new_subscriber(address, chosen, confirmed=confirmed)
    session.add(subscriber)
    session.flush()
    record(session, subscriber, "subscribed", channel, basis)
    if confirmed:
        record(session, subscriber, "confirmed", channel, basis)
    else:
        new_request(session, subscriber, chosen, channel)
    return subscriber


# Sign-up requests: what a sign-up asked for, waiting for the owner of the address.


def choices_json(chosen: Choices) -> dict[str, object]:
    return {
        "name": chosen.name,
        "municipality": chosen.municipality,
        "role": chosen.role,
        "frequency": chosen.frequency,
        "topics": list(chosen.topics),
        "language": chosen.language,
    }


def requested_choices(request: SignupRequest) -> Choices:
    """The choices a request carries (written by `choices_json`, so already checked)."""
    data = request.choices if isinstance(request.choices, dict) else {}

    def text(key: str, default: str = "") -> str:
        value = data.get(key)
        return value if isinstance(value, str) else default

    topics = data.get("topics")
    return Choices(
        name=text("name"),
        municipality=text("municipality"),
        role=text("role"),
        frequency=text("frequency", Frequency.DAILY.value),
        topics=tuple(t for t in topics if isinstance(t, str)) if isinstance(topics, list) else (),
        language=text("language", Language.BOKMAL.value),
    )


def stored_choices(subscriber: Subscriber) -> Choices:
    return Choices(
        name=subscriber.name,
        municipality=subscriber.municipality,
        role=subscriber.role,
        frequency=subscriber.frequency,
        topics=tuple(subscriber.topics or ()),
        language=subscriber.language,
    )


def request_row(subscriber: Subscriber, chosen: Choices, channel: Channel | str) -> SignupRequest:
    """A request (not yet added) for a subscriber that has its id."""
    return SignupRequest(
        subscriber_id=subscriber.id,
        nonce=secrets.token_urlsafe(18),
        choices=choices_json(chosen),
        channel=str(channel),
        created_at=utcnow(),
    )


def new_request(
    session: Session, subscriber: Subscriber, chosen: Choices, channel: Channel | str
) -> SignupRequest:
    request = request_row(subscriber, chosen, channel)
    session.add(request)
    session.flush()
    return request


def open_requests(
    session: Session, subscriber: Subscriber, now: datetime | None = None
) -> list[SignupRequest]:
    """The person's requests whose link still works, newest first."""
    since = (now or utcnow()) - REQUEST_MAX_AGE
    return list(
        session.scalars(
            select(SignupRequest)
            .where(SignupRequest.subscriber_id == subscriber.id, SignupRequest.created_at > since)
            .order_by(SignupRequest.created_at.desc(), SignupRequest.id.desc())
        )
    )


def latest_request(session: Session, subscriber: Subscriber) -> SignupRequest | None:
    found = open_requests(session, subscriber)
    return found[0] if found else None


def request_confirmation(
    session: Session, subscriber: Subscriber, channel: Channel | str = Channel.WEB
) -> SignupRequest:
    """What a new confirm link names: the latest open request, or a new one carrying the
    choices stored on the person (whose requests have run out, or who predate them)."""
    return latest_request(session, subscriber) or new_request(
        session, subscriber, stored_choices(subscriber), channel
    )


def find_request(session: Session, nonce: str) -> SignupRequest | None:
    return session.scalar(select(SignupRequest).where(SignupRequest.nonce == nonce))


def is_expired(request: SignupRequest, now: datetime | None = None) -> bool:
    return request.created_at <= (now or utcnow()) - REQUEST_MAX_AGE


def _drop_requests(session: Session, subscriber: Subscriber) -> None:
    # The notices that carried their links go with them (ON DELETE CASCADE).
    session.execute(delete(SignupRequest).where(SignupRequest.subscriber_id == subscriber.id))


@dataclass(frozen=True, slots=True)
class SignUp:
    subscriber: Subscriber
    # CONFIRM: send the link of `request`; ALREADY: send the manage link instead.
    send: NoticeKind
    request: SignupRequest | None = None


def sign_up(
    session: Session, email: str, chosen: Choices, channel: Channel = Channel.WEB
) -> SignUp:
    """A sign-up through the public form; the same outcome is shown whoever the address is.

    A new address becomes a pending subscriber. For a known one nothing stored about the
    person changes: the choices wait in a request until its link is followed (`confirm`),
    and an active subscriber gets a mail with their manage link instead.
    """
    address = normalise_email(email)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        subscriber = add_subscriber(session, address, chosen, channel=channel)
        return SignUp(subscriber, NoticeKind.CONFIRM, latest_request(session, subscriber))
    if subscriber.status == Status.ACTIVE:
        return SignUp(subscriber, NoticeKind.ALREADY)
    # Pending, unsubscribed or suppressed: a new request for consent, and nothing else.
    # The newest request is kept: the owner's own sign-up must not lose to a pile of
    # earlier ones a stranger made. The oldest go (with the notices that carried them).
    for oldest in open_requests(session, subscriber)[MAX_OPEN_REQUESTS - 1 :]:
        session.delete(oldest)
    return SignUp(subscriber, NoticeKind.CONFIRM, new_request(session, subscriber, chosen, channel))


def confirm(
    session: Session, secret_key: str, nonce: str, now: datetime | None = None
) -> tuple[str, Subscriber | None]:
    """("confirmed" | "used" | "expired", subscriber) for the nonce a confirm link names.

    Confirming applies that request's choices and only those, makes the person active,
    lifts a suppression of the address, and uses up every open request of theirs.
    """
    now = now or utcnow()
    request = find_request(session, nonce)
    if request is None:
        return "used", None
    subscriber = session.get_one(Subscriber, request.subscriber_id)
    if is_expired(request, now):
        return "expired", subscriber
    suppressed_at = subscriber.suppressed_at
    if subscriber.status == Status.SUPPRESSED and (
        suppressed_at is not None and request.created_at <= suppressed_at
    ):
        return "used", subscriber  # only a sign-up made after the suppression can lift it
    chosen = requested_choices(request)
    apply_choices(subscriber, chosen)
    subscriber.status = Status.ACTIVE
    subscriber.confirmed_at = now
    subscriber.unsubscribed_at = None
    subscriber.suppressed_at = None
    subscriber.suppressed_reason = None
    subscriber.soft_failures = 0
    asked = f"{request.channel} sign-up of {request.created_at:%Y-%m-%d %H:%M} UTC"
    _drop_requests(session, subscriber)
    # Consent given anew lifts an earlier suppression of this address.
    session.execute(
        delete(Suppression).where(
            Suppression.address_hash == address_hash(secret_key, subscriber.email)
        )
    )
    record(session, subscriber, "confirmed", Channel.WEB, f"{asked}; {_summary(chosen)}")
    session.flush()
    return "confirmed", subscriber


def _summary(chosen: Choices) -> str:
    return (
        f"frequency={chosen.frequency}; topics={','.join(chosen.topics) or 'all'}; "
        f"language={chosen.language}"
    )


def update_preferences(
    session: Session, subscriber: Subscriber, chosen: Choices, channel: Channel = Channel.WEB
) -> bool:
    changed = apply_choices(subscriber, chosen)
    if changed:
        record(session, subscriber, "preferences", channel, _summary(chosen))
    return changed


def list_subscribers(session: Session, status: Status | None = None) -> Sequence[Subscriber]:
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
    session: Session, subscriber: Subscriber, channel: Channel = Channel.WEB
) -> Subscriber:
    """Unsubscribe the subscriber a link named; idempotent."""
    if subscriber.status in (Status.ACTIVE, Status.PENDING):
        subscriber.status = Status.UNSUBSCRIBED
        subscriber.unsubscribed_at = utcnow()
        record(session, subscriber, "unsubscribed", channel)
    # Open confirm links stop working, a stranger's sign-up among them.
    _drop_requests(session, subscriber)
    session.flush()
    return subscriber


def suppress(session: Session, subscriber: Subscriber, reason: str) -> None:
    """Never mail this address again (until the person confirms a new sign-up)."""
    if subscriber.status == Status.SUPPRESSED:
        return
    subscriber.status = Status.SUPPRESSED
    subscriber.suppressed_at = utcnow()
    subscriber.suppressed_reason = clean_line(reason, 500)  # a relay's words
    record(session, subscriber, "suppressed", Channel.SYSTEM, reason)


def delivery_failed(
    session: Session, subscriber: Subscriber, reason: str, *, permanent: bool, soft_limit: int
) -> None:
    """Count one failed delivery; a permanent one, or `soft_limit` soft ones in a row,
    suppresses. The caller counts a temporary refusal once per delivery, not per attempt,
    and only when it is the recipient's (the relay accepted others); here at most one a
    day is counted, so the limit means days of trouble, not a burst of runs."""
    if permanent:
        suppress(session, subscriber, f"permanent delivery failure: {reason}")
        return
    now = utcnow()
    last = subscriber.soft_failed_at
    if last is not None and now - last < SOFT_BOUNCE_SPACING:
        # Runs that follow each other quickly (immediate digests, a catch-up after an
        # outage) would otherwise use up the limit in minutes of one passing trouble.
        return
    subscriber.soft_failed_at = now
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
