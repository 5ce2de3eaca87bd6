"""The people's tables (subscribers, sign-up requests, consent events, suppressions) and
the vocabularies their columns hold, as enums stored by value (`str_enum`)."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from subscribers.base import Base, UTCDateTime, str_enum, utcnow


def new_ref() -> str:
    return secrets.token_urlsafe(16)


class Frequency(StrEnum):
    IMMEDIATE = "immediate"
    DAILY = "daily"
    WEEKLY = "weekly"


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"


class Role(StrEnum):
    MANAGEMENT = "kommunal-ledelse"
    CRISIS_CENTRE = "krisesenter"
    HEALTH = "helse-omsorg"
    SCHOOL = "barnehage-skole"
    CHILD_WELFARE = "barnevern"
    OTHER = "annet"


def N_(message: str) -> str:
    """Marks a bokmål message for the catalogues (`digest messages extract` finds it by
    name); the pages translate it where they show it. `subscribers` cannot import digest."""
    return message


ROLE_LABELS = {
    Role.MANAGEMENT: N_("Kommunal ledelse"),
    Role.CRISIS_CENTRE: N_("Krisesenter"),
    Role.HEALTH: N_("Helse og omsorg"),
    Role.SCHOOL: N_("Barnehage eller skole"),
    Role.CHILD_WELFARE: N_("Barnevern"),
    Role.OTHER: N_("Annet"),
}


class Language(StrEnum):
    BOKMAL = "nb"
    NYNORSK = "nn"
    ENGLISH = "en"


# Each language named in itself (not translated): what a language picker shows.
LANGUAGE_LABELS = {
    Language.BOKMAL: "Bokmål",
    Language.NYNORSK: "Nynorsk",
    Language.ENGLISH: "English",
}


class NoticeKind(StrEnum):
    """What a mail about the subscription itself is for (digest's Notice table)."""

    CONFIRM = "confirm"  # the link that confirms a sign-up request
    LINK = "link"  # the person's manage link, asked for again
    ALREADY = "already"  # a sign-up for an active address: their manage link instead


class Channel(StrEnum):
    """How a sign-up or a change of consent came in."""

    WEB = "web"  # the public pages and the links in mails
    IMPORT = "import"  # a roster
    ADMIN = "admin"  # the CLI
    SYSTEM = "system"  # the service itself (a suppression after bounces)


class ConsentAction(StrEnum):
    """What a consent event records."""

    SUBSCRIBED = "subscribed"
    CONFIRMED = "confirmed"
    PREFERENCES = "preferences"  # the person's choices changed
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    municipality: Mapped[str] = mapped_column(String(100), default="")  # number, e.g. "0301"
    role: Mapped[str] = mapped_column(String(50), default="")
    # «Bare det som er laget for min rolle»: only changes of sources written for the role's
    # audiences (the sources file's [roles]); announcements are targeted as always.
    role_only: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[Language] = mapped_column(str_enum(Language, 8), default=Language.BOKMAL)
    frequency: Mapped[Frequency] = mapped_column(
        str_enum(Frequency, 16), default=Frequency.DAILY, index=True
    )
    # Topic keys; an empty list means every topic.
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[Status] = mapped_column(str_enum(Status, 16), default=Status.PENDING, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suppressed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suppressed_reason: Mapped[str | None] = mapped_column(String(500))
    # Temporary delivery failures in a row; past a limit the address is suppressed.
    soft_failures: Mapped[int] = mapped_column(Integer, default=0)
    # When the last one was counted: at most one is counted a day.
    soft_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A random public reference: what the links in mails name instead of the id or address.
    ref: Mapped[str] = mapped_column(String(32), unique=True, default=new_ref)


class SignupRequest(Base):
    """A sign-up waiting for the owner of the address to confirm it from their mailbox.

    The choices asked for travel here, not on the subscriber, so that a sign-up for a
    known address changes nothing stored about that person until it is confirmed.
    """

    __tablename__ = "signup_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    # The random value the confirm link names; opaque and single-use.
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    choices: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 10), default=Channel.WEB)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ConsentEvent(Base):
    """The history of a subscriber's consent and choices: what, when, through which channel."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[ConsentAction] = mapped_column(str_enum(ConsentAction, 30))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 10))
    detail: Mapped[str] = mapped_column(Text, default="")


class Suppression(Base):
    """Addresses never to be mailed again, kept only as salted hashes."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
