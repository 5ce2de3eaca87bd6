"""Coming and going: adding people, sign-up requests and their confirmation (double
opt-in), asking for one's link again, and unsubscribing.

A sign-up for an address that is already known changes nothing about that person: what
it asks for waits in a `SignupRequest` until the owner confirms it from their own mailbox.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subscribers.addresses import normalise_email
from subscribers.base import utcnow
from subscribers.choices import (
    Choices,
    apply_choices,
    choices_json,
    requested_choices,
    stored_choices,
    summary,
)
from subscribers.errors import SubscriberError
from subscribers.models import (
    Channel,
    ConsentAction,
    NoticeKind,
    SignupRequest,
    Status,
    Subscriber,
)
from subscribers.people import find_by_email, new_subscriber, record, record_joined
from subscribers.suppression import lift_suppression
from subscribers.tokens import CONFIRM_MAX_AGE

# A confirm link works this long.
REQUEST_MAX_AGE = timedelta(seconds=CONFIRM_MAX_AGE)
# Open requests kept per person. Past this a sign-up drops the oldest, so that nobody can
# pile requests (and their text) onto an address.
MAX_OPEN_REQUESTS = 5


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
        raise SubscriberError(f"{address} is already a subscriber", "email")
    subscriber = new_subscriber(address, chosen, confirmed=confirmed)
    session.add(subscriber)
    session.flush()
    record_joined(session, subscriber, channel, basis, confirmed=confirmed)
    if not confirmed:
        new_request(session, subscriber, chosen, channel)
    return subscriber


def request_row(subscriber: Subscriber, chosen: Choices, channel: Channel) -> SignupRequest:
    """A request (not yet added) for a subscriber that has its id."""
    return SignupRequest(
        subscriber_id=subscriber.id,
        nonce=secrets.token_urlsafe(18),
        choices=choices_json(chosen),
        channel=channel,
        created_at=utcnow(),
    )


def new_request(
    session: Session, subscriber: Subscriber, chosen: Choices, channel: Channel
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
    session: Session, subscriber: Subscriber, channel: Channel = Channel.WEB
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
class ToMail:
    """The notice a sign-up or a request for one's link sends, and to whom."""

    subscriber: Subscriber
    # CONFIRM: the link of `request`; ALREADY (a sign-up) or LINK: the manage link.
    kind: NoticeKind
    request: SignupRequest | None = None


def sign_up(
    session: Session, email: str, chosen: Choices, channel: Channel = Channel.WEB
) -> ToMail:
    """A sign-up through the public form; the same outcome is shown whoever the address is.

    A new address becomes a pending subscriber. For a known one nothing stored about the
    person changes: the choices wait in a request until its link is followed (`confirm`),
    and an active subscriber gets a mail with their manage link instead.
    """
    address = normalise_email(email)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        subscriber = add_subscriber(session, address, chosen, channel=channel)
        return ToMail(subscriber, NoticeKind.CONFIRM, latest_request(session, subscriber))
    if subscriber.status == Status.ACTIVE:
        return ToMail(subscriber, NoticeKind.ALREADY)
    # Pending, unsubscribed or suppressed: a new request for consent, and nothing else.
    # The newest request is kept: the owner's own sign-up must not lose to a pile of
    # earlier ones a stranger made. The oldest go (with the notices that carried them).
    for oldest in open_requests(session, subscriber)[MAX_OPEN_REQUESTS - 1 :]:
        session.delete(oldest)
    return ToMail(subscriber, NoticeKind.CONFIRM, new_request(session, subscriber, chosen, channel))


def link_request(session: Session, email: str) -> ToMail | None:
    """What a request for one's link sends: an active person their manage link, a pending
    one the confirm link of their latest open request (or of a new one); anyone else,
    or an unknown address, nothing."""
    subscriber = find_by_email(session, email)
    if subscriber is None:
        return None
    if subscriber.status == Status.ACTIVE:
        return ToMail(subscriber, NoticeKind.LINK)
    if subscriber.status == Status.PENDING:
        return ToMail(subscriber, NoticeKind.CONFIRM, request_confirmation(session, subscriber))
    return None


class Confirmation(StrEnum):
    """What following a confirm link came to."""

    CONFIRMED = "confirmed"
    USED = "used"  # no such request (used up, or dropped), or one older than a suppression
    EXPIRED = "expired"


def confirm(
    session: Session, secret_key: str, nonce: str, now: datetime | None = None
) -> tuple[Confirmation, Subscriber | None]:
    """(outcome, subscriber) for the nonce a confirm link names.

    Confirming applies that request's choices and only those, makes the person active,
    lifts a suppression of the address, and uses up every open request of theirs.
    """
    now = now or utcnow()
    request = find_request(session, nonce)
    if request is None:
        return Confirmation.USED, None
    subscriber = session.get_one(Subscriber, request.subscriber_id)
    if is_expired(request, now):
        return Confirmation.EXPIRED, subscriber
    suppressed_at = subscriber.suppressed_at
    if subscriber.status == Status.SUPPRESSED and (
        suppressed_at is not None and request.created_at <= suppressed_at
    ):
        # Only a sign-up made after the suppression can lift it.
        return Confirmation.USED, subscriber
    _activate(session, secret_key, subscriber, request, now)
    return Confirmation.CONFIRMED, subscriber


def _activate(
    session: Session, secret_key: str, subscriber: Subscriber, request: SignupRequest, now: datetime
) -> None:
    """Apply a confirmed request: its choices, an active status, consent recorded."""
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
    lift_suppression(session, secret_key, subscriber.email)
    record(session, subscriber, ConsentAction.CONFIRMED, Channel.WEB, f"{asked}; {summary(chosen)}")
    session.flush()


def unsubscribe(
    session: Session, subscriber: Subscriber, channel: Channel = Channel.WEB
) -> Subscriber:
    """Unsubscribe the subscriber a link named; idempotent."""
    if subscriber.status in (Status.ACTIVE, Status.PENDING):
        subscriber.status = Status.UNSUBSCRIBED
        subscriber.unsubscribed_at = utcnow()
        record(session, subscriber, ConsentAction.UNSUBSCRIBED, channel)
    # Open confirm links stop working, a stranger's sign-up among them.
    _drop_requests(session, subscriber)
    session.flush()
    return subscriber
