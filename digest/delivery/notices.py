"""Mails about the subscription itself: the confirmation link, and the manage link on request.

A notice is a row first (so the database knows what is owed), queued in the same
transaction as the sign-up, and sent right after commit; the recovery sweep sends any
that a crash left behind. At most a few notices an hour go to one address.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from digest import SERVICE_NAME
from digest.core.errors import DigestError
from digest.core.models import MailStatus, Notice
from digest.core.settings import Settings
from digest.delivery import claims, outcomes, sending
from digest.delivery.claims import Outcome, Verdict
from digest.delivery.outcomes import NOTICES, Sent
from digest.mail.envelopes import envelope, notice_message_id
from digest.mail.letter import Letterhead
from digest.mail.links import confirm_url, links_for
from digest.mail.mailer import Transport, build_message
from digest.mail.render import render_notice
from digest.mail.wire import Wire, wire_of
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


def lost_notices(
    session: Session, now: datetime, stale: timedelta = claims.STALE_CLAIM
) -> list[int]:
    """What the sweep sends again: notices pending longer than their sender should have
    taken (queued and never sent, or left to retry, once their backoff is over), and
    claims lost with their worker."""
    return list(
        session.scalars(
            select(Notice.id)
            .where(
                or_(
                    and_(claims.due(Notice, now), Notice.created_at < now - LOST_AFTER),
                    claims.stale_claim(Notice, now, stale),
                )
            )
            .order_by(Notice.id)
        )
    )


def send_notices(
    sessions: sessionmaker[Session],
    sender: sending.Outlet | Transport,
    settings: Settings,
    notice_ids: Sequence[int],
) -> NoticeReport:
    """Send the notices `notice_ids` (those still owed) through `sender` (the process's
    pool, or a transport), as digests go (see `sending`): claimed and built in one
    transaction, one mail each, outcomes recorded after."""
    batch = NoticeBatch(settings, sorted(set(notice_ids)))
    with sending.outlet_of(sender, settings) as outlet:
        batch.outlet = outlet
        mails = batch.begin(sessions, utcnow())
        sending.send_batch(sessions, outlet, settings, batch, mails)
    return batch.report


@dataclass(frozen=True, slots=True)
class Outgoing:
    mail_id: int  # the notice's
    subscriber_id: int
    wire: Wire


@dataclass(slots=True)
class NoticeBatch:
    """Some notices: claimed and built in one transaction (`begin`), outcomes recorded
    in batches after (`record`)."""

    settings: Settings
    notice_ids: list[int]
    report: NoticeReport = field(default_factory=NoticeReport)
    outlet: sending.Outlet | None = None
    claimed_at: datetime | None = None
    attempts: dict[int, int] = field(default_factory=dict)
    give_up: dict[int, datetime] = field(default_factory=dict)

    def begin(self, sessions: sessionmaker[Session], now: datetime) -> list[Outgoing]:
        return outcomes.claim_after_replay(
            sessions, self.settings, NOTICES, lambda s, journaled: self.claim(s, now, journaled)
        )

    def claim(self, session: Session, now: datetime, journaled: set[int]) -> list[Outgoing]:
        self.claimed_at = now
        claimed = claims.claim_where(
            session,
            Notice,
            Notice.id.in_(self.notice_ids),
            now,
            timedelta(seconds=self.settings.stale_claim_seconds),
            excluded=journaled,
        )
        if not claimed:
            return []
        notices = session.scalars(
            select(Notice).where(Notice.id.in_([row.id for row in claimed])).order_by(Notice.id)
        ).all()
        people = {
            s.id: s
            for s in session.scalars(
                select(Subscriber).where(Subscriber.id.in_({n.subscriber_id for n in notices}))
            )
        }
        requests = {
            r.id: r
            for r in session.scalars(
                select(SignupRequest).where(
                    SignupRequest.id.in_({n.signup_request_id for n in notices} - {None})
                )
            )
        }
        mails: list[Outgoing] = []
        failed: list[Outcome] = []
        for notice in notices:
            self.attempts[notice.id] = notice.attempts
            self.give_up[notice.id] = give_up_at(notice)
            subscriber = people.get(notice.subscriber_id)
            if claims.overdue(notice.attempts, now, give_up_at(notice)):
                reason = f"gave up; last error: {notice.error}"
                failed.append(Outcome(notice.id, notice.subscriber_id, Verdict.FAILED, reason))
            elif subscriber is None or (
                subscriber.status == Status.SUPPRESSED and notice.kind != NoticeKind.CONFIRM
            ):
                claims.settle(notice, MailStatus.SKIPPED_INACTIVE)  # nobody to send it to
            else:
                request = requests.get(notice.signup_request_id or 0)
                try:
                    message = notice_message(self.settings, notice, subscriber, request, now)
                    wire = wire_of(message)
                except Exception as exc:  # a corrupt row fails this notice alone
                    reason = str(claims.build_failure(exc))
                    failed.append(Outcome(notice.id, notice.subscriber_id, Verdict.FAILED, reason))
                    continue
                mails.append(Outgoing(notice.id, notice.subscriber_id, wire))
        self.record(session, failed, final=False)()
        return mails

    def build(self, mail: Outgoing) -> Wire:
        return mail.wire

    def sent(self, mail: Outgoing, at: datetime) -> Sent:
        return Sent(NOTICES, mail.mail_id, mail.subscriber_id, at)

    def record(self, session: Session, batch: list[Outcome], final: bool) -> Callable[[], None]:
        """Record a batch of outcomes; what to count once committed."""
        now = utcnow()
        assert self.claimed_at is not None
        outcomes.record_sent(session, [o.sent for o in batch if o.sent is not None])
        settled = claims.settle_failures(
            session,
            Notice,
            [o for o in batch if o.verdict != Verdict.SENT],
            settings=self.settings,
            now=now,
            claimed_at=self.claimed_at,
            attempts=self.attempts.__getitem__,
            give_up_at=self.give_up.__getitem__,
            resume_at=sending.resume_at(self.settings, self.outlet, now),
        )
        sent = sum(1 for o in batch if o.verdict == Verdict.SENT)
        claimed_at: datetime | None = self.claimed_at
        if not final:
            claimed_at = claims.renew(
                session,
                Notice,
                Notice.id.in_(self.notice_ids),
                self.claimed_at,
                now,
                timedelta(seconds=self.settings.stale_claim_seconds),
            )

        def count() -> None:
            self.claimed_at = claimed_at
            self.report.sent += sent
            self.report.failed += len(settled)
            self.report.errors.extend(reason for _, _, reason in settled)

        return count


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
        letterhead=Letterhead.of(settings),
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
