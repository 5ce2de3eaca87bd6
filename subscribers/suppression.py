"""Addresses never to be mailed again: suppression, and the delivery failures that lead to it.

Once a person is gone only a salted hash of the address is kept (`address_hash`), so that
an erased or bouncing address is not mailed again until its owner signs up anew.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from subscribers.base import utcnow
from subscribers.models import Channel, ConsentAction, Status, Subscriber, Suppression
from subscribers.people import record
from subscribers.text import clean_line

# Soft bounces closer together than this count as one.
SOFT_BOUNCE_SPACING = timedelta(hours=20)


def address_hash(secret_key: str, email: str) -> str:
    """The salted hash an address is kept as once the person is gone."""
    key = hashlib.sha256(b"digest.suppression:" + secret_key.encode()).digest()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def is_suppressed(session: Session, secret_key: str, email: str) -> bool:
    digest = address_hash(secret_key, email)
    return (
        session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is not None
    )


def keep_hash(session: Session, secret_key: str, email: str, reason: str) -> None:
    """Put a normalised address on the suppression list (as its salted hash) if not there."""
    digest = address_hash(secret_key, email)
    if session.scalar(select(Suppression.id).where(Suppression.address_hash == digest)) is None:
        session.add(Suppression(address_hash=digest, reason=reason, created_at=utcnow()))


def lift_suppression(session: Session, secret_key: str, email: str) -> None:
    """Mail this address again: its owner has confirmed a new sign-up."""
    session.execute(
        delete(Suppression).where(Suppression.address_hash == address_hash(secret_key, email))
    )


def suppress(session: Session, subscriber: Subscriber, reason: str) -> None:
    """Never mail this address again (until the person confirms a new sign-up)."""
    if subscriber.status == Status.SUPPRESSED:
        return
    subscriber.status = Status.SUPPRESSED
    subscriber.suppressed_at = utcnow()
    subscriber.suppressed_reason = clean_line(reason, 500)  # a relay's words
    record(session, subscriber, ConsentAction.SUPPRESSED, Channel.SYSTEM, reason)


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
