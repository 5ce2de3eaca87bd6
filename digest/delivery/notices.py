"""Mails about the subscription itself: the confirmation link, and the manage link on request.

A notice is a row first (so the database knows what is owed), queued in the same
transaction as the sign-up, and sent right after commit; the recovery sweep sends any
that a crash left behind. At most a few notices an hour go to one address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from digest import SERVICE_NAME
from digest.core.db import session_scope
from digest.core.models import MailStatus, Notice
from digest.core.settings import Settings
from digest.delivery import claims
from digest.mail.links import confirm_url, links_for
from digest.mail.mailer import Envelope, SendError, Transport, build_message, make_transport
from digest.mail.render import render_notice
from subscribers.base import utcnow
from subscribers.models import Channel, NoticeKind, SignupRequest, Status, Subscriber
from subscribers.service import request_confirmation

MAX_PER_HOUR = 3
# A notice still pending this long after it was queued was lost with its sender (or
# failed for now), and the recovery sweep sends it.
LOST_AFTER = timedelta(minutes=5)
# A notice still failing for now this long after it was queued fails for good: whoever
# asked for it has long since asked again or given up.
LIFETIME = timedelta(days=1)


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
    settings: Settings, notice_ids: Sequence[int], transport: Transport | None = None
) -> NoticeReport:
    transport = transport or make_transport(settings.smtp_url, settings.outbox_dir)
    return asyncio.run(_send(settings, list(notice_ids), transport))


async def _send(settings: Settings, ids: list[int], transport: Transport) -> NoticeReport:
    report = NoticeReport()
    try:
        for notice_id in ids:
            await _send_one(settings, notice_id, transport, report)
    finally:
        await transport.close()
    return report


async def _send_one(
    settings: Settings, notice_id: int, transport: Transport, report: NoticeReport
) -> None:
    """Claim, build, send and record one notice; any failure stays with this one mail."""
    if not _claim(settings, notice_id):
        return
    try:
        message = _build(settings, notice_id)
    except Exception as exc:  # a corrupt row or a bug fails this notice, with its reason
        _record_failure(settings, notice_id, claims.build_failure(exc), report)
        return
    if message is None:
        return
    try:
        await transport.send(message)
    except Exception as exc:  # whatever it is, it is this notice's failure
        _record_failure(settings, notice_id, claims.send_failure(exc, transport), report)
        return
    with session_scope(settings.database_url) as session:
        # Gone when its sign-up request went meanwhile (confirmed, or the person left).
        if (sent := session.get(Notice, notice_id)) is not None:
            claims.settle_sent(sent, utcnow())
    report.sent += 1


def _claim(settings: Settings, notice_id: int) -> bool:
    with session_scope(settings.database_url) as session:
        now = utcnow()
        if not claims.claim(session, Notice, notice_id, now):
            return False  # sent already, or another worker has it
        notice = session.get_one(Notice, notice_id)
        if not claims.overdue(notice, now, give_up_at(notice)):
            return True
        claims.settle(notice, MailStatus.FAILED, f"gave up; last error: {notice.error}")
        return False


def _build(settings: Settings, notice_id: int) -> EmailMessage | None:
    """The message of a claimed notice; None when there is nobody to send it to."""
    with session_scope(settings.database_url) as session:
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
        return _message(settings, notice, subscriber, request)


def _record_failure(
    settings: Settings, notice_id: int, failure: SendError, report: NoticeReport
) -> None:
    with session_scope(settings.database_url) as session:
        notice = session.get(Notice, notice_id)
        if notice is None:
            return  # deleted with its sign-up request meanwhile: nothing is owed any more
        claims.settle_failure(
            notice,
            str(failure),
            permanent=failure.permanent,
            now=utcnow(),
            give_up_at=give_up_at(notice),
        )
    report.failed += 1
    report.errors.append(str(failure))


def _message(
    settings: Settings, notice: Notice, subscriber: Subscriber, request: SignupRequest | None
) -> EmailMessage:
    links = links_for(settings, subscriber)
    confirm = ""
    if notice.kind == NoticeKind.CONFIRM:
        if request is None:
            raise LookupError(f"confirmation notice {notice.id} has no sign-up request")
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
    envelope = Envelope(
        from_address=settings.from_address,
        from_name=settings.from_name,
        to_address=subscriber.email,
        to_name=name,
        message_id=f"notice{notice.id}@{settings.mail_domain}",
        list_id=f"{SERVICE_NAME} <digest.{settings.mail_domain}>",
        unsubscribe_url=links.unsubscribe,
        date=utcnow(),
    )
    return build_message(mail, envelope)
