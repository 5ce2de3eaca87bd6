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

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, object_session

from digest import SERVICE_NAME
from digest.db import session_scope
from digest.links import confirm_url, links_for
from digest.mailer import Envelope, SendError, Transport, build_message, make_transport
from digest.models import MailStatus, Notice
from digest.render import render_notice
from digest.settings import Settings
from subscribers.base import utcnow
from subscribers.models import Channel, SignupRequest, Status, Subscriber
from subscribers.service import request_confirmation

KINDS = ("confirm", "link", "already")
MAX_PER_HOUR = 3
# A notice still pending this long after it was queued was lost with its sender.
LOST_AFTER = timedelta(minutes=5)


def queue_notice(
    session: Session, subscriber: Subscriber, kind: str, request: SignupRequest | None = None
) -> Notice | None:
    """Queue a notice, unless this address has had its share this hour (then None).

    A confirmation names the sign-up request whose link it carries; without one given it
    carries the person's latest open request (or a new one with their stored choices).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    if request is not None and kind != "confirm":
        raise ValueError(f"a {kind!r} notice carries no sign-up request")
    now = utcnow()
    recent = session.scalar(
        select(func.count())
        .select_from(Notice)
        .where(Notice.subscriber_id == subscriber.id, Notice.created_at > now - timedelta(hours=1))
    )
    if recent and recent >= MAX_PER_HOUR:
        return None
    if kind == "confirm" and request is None:
        request = request_confirmation(session, subscriber, Channel.SYSTEM)
    notice = Notice(
        subscriber_id=subscriber.id,
        kind=kind,
        status=MailStatus.PENDING.value,
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


def lost_notices(session: Session, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(Notice.id).where(
                Notice.status == "pending", Notice.created_at < now - LOST_AFTER
            )
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
            with session_scope(settings.database_url) as session:
                claimed = session.execute(
                    update(Notice)
                    .where(Notice.id == notice_id, Notice.status == "pending")
                    .values(status="sending")
                ).rowcount
                if not claimed:
                    continue
                notice = session.get_one(Notice, notice_id)
                subscriber = session.get(Subscriber, notice.subscriber_id)
                if subscriber is None or (
                    subscriber.status == Status.SUPPRESSED.value and notice.kind != "confirm"
                ):
                    notice.status = "skipped"
                    continue
                message = _message(settings, notice, subscriber)
            try:
                await transport.send(message)
            except SendError as exc:
                with session_scope(settings.database_url) as session:
                    failed = session.get_one(Notice, notice_id)
                    failed.status = "failed" if exc.permanent else "pending"
                    failed.error = str(exc)[:2000]
                report.failed += 1
                report.errors.append(str(exc))
                continue
            with session_scope(settings.database_url) as session:
                done = session.get_one(Notice, notice_id)
                done.status, done.sent_at, done.error = "sent", utcnow(), None
            report.sent += 1
    finally:
        await transport.close()
    return report


def _message(settings: Settings, notice: Notice, subscriber: Subscriber) -> EmailMessage:
    links = links_for(settings, subscriber)
    confirm = ""
    if notice.kind == "confirm":
        session = object_session(notice)
        request = (
            session.get(SignupRequest, notice.signup_request_id)
            if session is not None and notice.signup_request_id is not None
            else None
        )
        if request is None:
            raise LookupError(f"confirmation notice {notice.id} has no sign-up request")
        confirm = confirm_url(settings, request)
    # Name and language are the ones stored: a request's choices are not the person's
    # until they confirm it.
    mail = render_notice(
        notice.kind,
        service_name=SERVICE_NAME,
        email=subscriber.email,
        name=subscriber.name,
        confirm_url=confirm,
        links=links,
        language=subscriber.language or "nb",
    )
    envelope = Envelope(
        from_address=settings.from_address,
        from_name=settings.from_name,
        to_address=subscriber.email,
        to_name=subscriber.name,
        message_id=f"notice{notice.id}@{settings.mail_domain}",
        list_id=f"{SERVICE_NAME} <digest.{settings.mail_domain}>",
        unsubscribe_url=links.unsubscribe,
        date=utcnow(),
    )
    return build_message(mail, envelope)
