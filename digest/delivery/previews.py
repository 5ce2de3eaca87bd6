"""The next digest of one subscriber, or of a sample profile, as it would be sent now; and
a test mail of it to an editor. Nothing here records anything: no run, no delivery, no
receipt, no bounce.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest import SERVICE_NAME
from digest.core.models import Change, ChangeReview, Item, Source
from digest.core.periods import Period, latest_period, schedule_of
from digest.core.roles import audiences_for
from digest.core.settings import Settings
from digest.core.topics import topic_labels
from digest.delivery.announcements import published_at
from digest.delivery.digests import changes_in, digest_for
from digest.mail.compose import Digest, Recipient, compose
from digest.mail.envelopes import envelope
from digest.mail.letter import Letterhead
from digest.mail.mailer import build_message
from digest.mail.render import MailLinks, RenderedMail, render
from subscribers.models import Frequency, Language, Subscriber

TEST_MARK = "[TEST] "


@dataclass(frozen=True, slots=True)
class SampleProfile:
    """A made-up reader, to see what a kind of subscriber would get."""

    frequency: Frequency = Frequency.DAILY
    topics: tuple[str, ...] = ()
    role: str = ""
    municipality: str = ""
    language: Language = Language.BOKMAL
    role_only: bool = False  # «Bare det som er laget for min rolle»


@dataclass(frozen=True, slots=True)
class WaitingChange:
    change_id: int
    title: str
    source_name: str
    detected_at: datetime


@dataclass(frozen=True, slots=True)
class NextDigest:
    period: Period  # the period of the next run; only what is known by `now` is in it
    digest: Digest
    mail: RenderedMail | None  # None when nothing would be sent (no empty mail)
    waiting: tuple[WaitingChange, ...]  # held for review, so not in it


def next_period(frequency: Frequency, now: datetime, settings: Settings) -> Period:
    """The period whose run comes next after `now`."""
    schedule = schedule_of(settings)
    current = latest_period(frequency, now, schedule)
    # A day can be 23 or 25 hours long: step past the next boundary with room to spare.
    slack = timedelta(hours=2) if frequency != Frequency.IMMEDIATE else timedelta(0)
    return latest_period(frequency, current.end + (current.end - current.start) + slack, schedule)


def _links(settings: Settings) -> MailLinks:
    # Never a subscriber's own links: whoever reads a preview or a test mail must not be
    # able to change that person's subscription with them.
    neutral = settings.base_url.rstrip("/") + "/lenke"
    return MailLinks(unsubscribe=neutral, manage=neutral)


def _waiting(session: Session, recipient: Recipient) -> tuple[WaitingChange, ...]:
    rows = session.execute(
        select(Change, Source.name, Source.topics, Source.audiences)
        .join(Item, Change.item_id == Item.id)
        .join(Source, Item.source_id == Source.id)
        .where(Change.review == ChangeReview.WAITING)
        .order_by(Change.detected_at.desc(), Change.id.desc())
    ).all()
    return tuple(
        WaitingChange(c.id, c.shown_title, name, c.detected_at)
        for c, name, topics, audiences in rows
        if recipient.wants(topics or ()) and recipient.reads(audiences or ())
    )


def next_digest(
    session: Session,
    settings: Settings,
    who: Subscriber | SampleProfile,
    now: datetime,
    editor_address: str = "eksempel@example.invalid",
) -> NextDigest:
    """What `who` would get if their next run went out now."""
    frequency = who.frequency
    period = next_period(frequency, now, settings)
    so_far = Period(frequency, period.start, min(period.end, now))
    changes = changes_in(session, so_far)
    announcements = published_at(session, now)
    if isinstance(who, Subscriber):
        digest = digest_for(session, who, changes, announcements, period)
        recipient = digest.recipient
    else:
        recipient = Recipient(
            0,
            editor_address,
            "",
            who.frequency,
            tuple(who.topics),
            who.language,
            who.role,
            who.municipality,
            audiences_for(session, who.role) if who.role_only else (),
        )
        digest = compose(recipient, changes, announcements, period)
    mail = None
    if not digest.is_empty:
        mail = render(
            digest,
            _links(settings),
            settings.tz,
            SERVICE_NAME,
            topic_labels(session),
            Letterhead.of(settings),
        )
    return NextDigest(period, digest, mail, _waiting(session, recipient))


def message_for_test(
    settings: Settings, preview: NextDigest, to_address: str, now: datetime
) -> EmailMessage:
    """`preview`'s mail, addressed to an editor and marked as a test in the subject."""
    if preview.mail is None:
        raise ValueError("nothing would be sent: there is no mail to test")
    mail = replace(preview.mail, subject=TEST_MARK + preview.mail.subject)
    message_id = f"test-{secrets.token_hex(8)}@{settings.mail_domain}"
    return build_message(
        mail,
        envelope(
            settings,
            to_address=to_address,
            to_name="",
            message_id=message_id,
            unsubscribe_url=_links(settings).unsubscribe,
            date=now,
        ),
    )
