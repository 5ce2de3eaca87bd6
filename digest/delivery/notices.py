"""Mails about the subscription itself: the confirmation link, and the manage link on request.

A notice is a row first (so the database knows what is owed), queued in the same
transaction as the sign-up, and sent right after commit; the recovery sweep sends any
that a crash left behind. At most a few notices an hour go to one address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from digest import SERVICE_NAME
from digest.core.errors import DigestError
from digest.core.models import MailStatus, Notice
from digest.core.settings import Settings
from digest.delivery import claims, sending
from digest.mail.envelopes import envelope, notice_message_id
from digest.mail.links import confirm_url, links_for
from digest.mail.mailer import SendError, Transport, build_message
from digest.mail.render import render_notice
from subscribers.base import utcnow
from subscribers.models import Channel, NoticeKind, SignupRequest, Status, Subscriber
from subscribers.roster import ImportReport
from subscribers.signups import request_confirmation

MAX_PER_HOUR = 3
# A notice still pending this long after it was queued was lost with its sender (or
# failed for now), and the recovery sweep sends it.
LOST_AFTER = timedelta(minutes=5)
# A notice still failing for now this long after it was queued fails for good: whoever
# asked for it has long since asked again or given up.
LIFETIME = timedelta(days=1)


class MissingSignupRequest(DigestError):
    """A confirmation notice whose sign-up request is not there: its link cannot be made."""

    def __init__(self, notice_id: int) -> None:
        super().__init__(f"confirmation notice {notice_id} has no sign-up request")
        self.notice_id = notice_id


def queue_confirmations(session: Session, report: ImportReport) -> list[int]:
    """Queue the confirmation mail of each person an imported roster added (an address
    past its hourly share gets none); the ids of the notices queued."""
    notices = (
        queue_notice(session, subscriber, NoticeKind.CONFIRM, report.requests[subscriber.id])
        for subscriber in report.to_confirm
    )
    return [notice.id for notice in notices if notice is not None]


def queue_notice(
    session: Session,
    subscriber: Subscriber,
    kind: NoticeKind,
    request: SignupRequest | None = None,
) -> Notice | None:
    """Queue a notice, unless this address has had its share this hour (then None).

    A confirmation names the sign-up request whose link it carries; without one given it
    carries the person's latest open request (or a new one with their stored choices).
    """
    if kind not in tuple(NoticeKind):
        raise ValueError(f"unknown notice kind {kind!r}")
    if request is not None and kind != NoticeKind.CONFIRM:
        raise ValueError(f"a {kind!r} notice carries no sign-up request")
    now = utcnow()
    recent = session.scalar(
        select(func.count())
        .select_from(Notice)
        .where(Notice.subscriber_id == subscriber.id, Notice.created_at > now - timedelta(hours=1))
    )
    if recent and recent >= MAX_PER_HOUR:
        return None
    if kind == NoticeKind.CONFIRM and request is None:
        request = request_confirmation(session, subscriber, Channel.SYSTEM)
    notice = Notice(
        subscriber_id=subscriber.id,
        kind=kind,
        status=MailStatus.PENDING,
        created_at=now,
        signup_request_id=request.id if request is not None else None,
    )
    session.add(notice)
    session.flush()
    return notice


@dataclass(slots=True)
class NoticeReport:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def give_up_at(notice: Notice) -> datetime:
    """When a notice that keeps failing for now fails for good."""
    return notice.created_at + LIFETIME


def lost_notices(session: Session, now: datetime) -> list[int]:
    """What the sweep sends again: notices pending longer than their sender should have
    taken (queued and never sent, or left to retry), and claims lost with their worker."""
    return list(
        session.scalars(
            select(Notice.id)
            .where(
                or_(
                    and_(
                        Notice.status == MailStatus.PENDING,
                        Notice.created_at < now - LOST_AFTER,
                    ),
                    claims.stale_claim(Notice, now),
                )
            )
            .order_by(Notice.id)
        )
    )


def send_notices(
    sessions: sessionmaker[Session],
    transport: Transport,
    settings: Settings,
    notice_ids: Sequence[int],
) -> NoticeReport:
    """Send the notices `notice_ids` (those still owed) over `transport`, each in short
    transactions of its own (see `sending`)."""
    batch = NoticeBatch(settings, list(notice_ids))
    sending.send_batch(sessions, transport, batch)
    return batch.report


@dataclass(frozen=True, slots=True)
class Outgoing:
    mail_id: int  # the notice's
    message: EmailMessage


@dataclass(slots=True)
class NoticeBatch:
    """The steps of sending some notices, each on the session of its own short transaction
    (`sending.send_batch` runs them)."""

    settings: Settings
    notice_ids: list[int]
    report: NoticeReport = field(default_factory=NoticeReport)

    def begin(self, session: Session, now: datetime) -> list[int]:
        return self.notice_ids

    def claim(self, session: Session, notice_id: int, now: datetime) -> bool:
        if not claims.claim(session, Notice, notice_id, now):
            return False  # sent already, or another worker has it
        notice = session.get_one(Notice, notice_id)
        if not claims.overdue(notice, now, give_up_at(notice)):
            return True
        claims.settle(notice, MailStatus.FAILED, f"gave up; last error: {notice.error}")
        return False

    def prepare(self, session: Session, notice_id: int, now: datetime) -> Outgoing | None:
        """The message of a claimed notice; None when there is nobody to send it to."""
        notice = session.get_one(Notice, notice_id)
        subscriber = session.get(Subscriber, notice.subscriber_id)
        if subscriber is None or (
            subscriber.status == Status.SUPPRESSED and notice.kind != NoticeKind.CONFIRM
        ):
            claims.settle(notice, MailStatus.SKIPPED_INACTIVE)
            return None
        request = (
            session.get(SignupRequest, notice.signup_request_id)
            if notice.signup_request_id is not None
            else None
        )
        return Outgoing(notice_id, notice_message(self.settings, notice, subscriber, request, now))

    def record_sent(self, session: Session, outgoing: Outgoing, now: datetime) -> None:
        # Gone when its sign-up request went meanwhile (confirmed, or the person left).
        if (sent := session.get(Notice, outgoing.mail_id)) is not None:
            claims.settle_sent(sent, now)
        self.report.sent += 1

    def record_failure(
        self, session: Session, notice_id: int, failure: SendError, now: datetime
    ) -> None:
        notice = session.get(Notice, notice_id)
        if notice is None:
            return  # deleted with its sign-up request meanwhile: nothing is owed any more
        claims.settle_failure(
            notice,
            str(failure),
            permanent=failure.permanent,
            now=now,
            give_up_at=give_up_at(notice),
        )
        self.report.failed += 1
        self.report.errors.append(str(failure))

    def end(self, session: Session, now: datetime) -> None:
        return None


def notice_message(
    settings: Settings,
    notice: Notice,
    subscriber: Subscriber,
    request: SignupRequest | None,
    now: datetime,
) -> EmailMessage:
    """The mail of one notice: rendered, and addressed as all our mails are."""
    links = links_for(settings, subscriber)
    confirm = ""
    if notice.kind == NoticeKind.CONFIRM:
        if request is None:
            raise MissingSignupRequest(notice.id)
        confirm = confirm_url(settings, request)
    # A confirmation goes to someone who has not confirmed anything: no text typed into
    # the form (a name) may reach them, or the form would mail anyone a stranger's words.
    # The language is the one stored.
    name = "" if notice.kind == NoticeKind.CONFIRM else subscriber.name
    mail = render_notice(
        notice.kind,
        service_name=SERVICE_NAME,
        email=subscriber.email,
        name=name,
        confirm_url=confirm,
        links=links,
        language=subscriber.language or "nb",
    )
    return build_message(
        mail,
        envelope(
            settings,
            to_address=subscriber.email,
            to_name=name,
            message_id=notice_message_id(settings, notice.id),
            unsubscribe_url=links.unsubscribe,
            date=now,
        ),
    )
