"""The digest each subscriber gets for a period, shown (`preview`) or delivered a chunk
at a time (`deliver_chunk`): claim, compose, render, address, send, record, each a step
of `DigestBatch` that `sending` runs in short transactions of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import EmailMessage
from enum import StrEnum

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from digest import SERVICE_NAME
from digest.core.models import (
    Change,
    ChangeReview,
    Delivery,
    DigestRun,
    Item,
    MailStatus,
    Source,
)
from digest.core.periods import Period
from digest.core.settings import Settings
from digest.core.topics import topic_labels
from digest.delivery import claims, sending
from digest.delivery.announcements import (
    published_at,
    received_by,
    release_receipts,
    reserve_receipts,
)
from digest.delivery.runs import complete_if_done, give_up_at
from digest.mail.compose import AnnouncementView, ChangeView, Digest, compose, recipient_of
from digest.mail.envelopes import digest_message_id, envelope
from digest.mail.links import links_for
from digest.mail.mailer import SendError, Transport, build_message
from digest.mail.render import render
from subscribers.models import Frequency, Status, Subscriber
from subscribers.suppression import delivered, delivery_failed


def changes_in(session: Session, period: Period) -> list[ChangeView]:
    """The changes a digest for `period` may hold: those sent without review that were
    detected in it, and those an editor approved in it. Hidden and waiting ones never."""
    in_period = or_(
        and_(
            Change.review == ChangeReview.AUTO,
            Change.detected_at >= period.start,
            Change.detected_at < period.end,
        ),
        and_(
            Change.review == ChangeReview.APPROVED,
            Change.reviewed_at >= period.start,
            Change.reviewed_at < period.end,
        ),
    )
    rows = session.execute(
        select(Change, Source.key, Source.name, Source.topics)
        .join(Item, Change.item_id == Item.id)
        .join(Source, Item.source_id == Source.id)
        .where(in_period)
        .order_by(Change.detected_at, Change.id)
    ).all()
    return [
        ChangeView(
            c.id,
            c.item_id,
            c.kind,
            c.detected_at,
            c.shown_title,
            c.url,
            c.summary_text,
            c.published_at,
            c.note,
            key,
            name,
            tuple(topics or ()),
            editor_note=c.editor_note,
            released_at=c.reviewed_at if c.review == ChangeReview.APPROVED else None,
        )
        for c, key, name, topics in rows
    ]


def digest_for(
    session: Session,
    subscriber: Subscriber,
    changes: Sequence[ChangeView],
    announcements: Sequence[AnnouncementView],
    period: Period,
    delivery_id: int | None = None,
) -> Digest:
    """The digest `subscriber` gets for `period`: their changes, and the announcements
    they have not had yet (nor are on their way in another mail; `delivery_id`: the
    delivery this digest is for, whose own claims do not count). Previews and deliveries
    both compose through here.

    In an immediate run, a daily or weekly subscriber is there only for the announcements
    sent with the next immediate run: they get those and nothing else (their changes come
    in their own digest)."""
    received = received_by(session, subscriber.id, delivery_id) if announcements else set()
    if period.frequency == Frequency.IMMEDIATE and subscriber.frequency != Frequency.IMMEDIATE:
        changes = []
        announcements = [a for a in announcements if a.send_immediately]
    return compose(
        recipient_of(subscriber),
        list(changes),
        [a for a in announcements if a.announcement_id not in received],
        period,
    )


def preview(session: Session, period: Period) -> list[Digest]:
    """What a run for `period` would send now, to whom; sends and stores nothing."""
    changes = changes_in(session, period)
    announcements = published_at(session, period.end)
    subscribers = session.scalars(
        select(Subscriber)
        .where(Subscriber.frequency == period.frequency, Subscriber.status == Status.ACTIVE)
        .order_by(Subscriber.email)
    ).all()
    return [digest_for(session, s, changes, announcements, period) for s in subscribers]


@dataclass(slots=True)
class ChunkReport:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retry: int = 0  # temporary failures left pending for another try
    errors: list[str] = field(default_factory=list)
    # The subscribers whose deliveries were left pending (to try again, or not reached
    # while the relay was paused), and the earliest time to try them: the actor hands
    # them to the workers again with that delay.
    retry_ids: list[int] = field(default_factory=list)
    next_try_at: datetime | None = None

    def summary(self) -> str:
        return (
            f"{self.sent} sent, {self.skipped} skipped, {self.failed} failed, {self.retry} to retry"
        )

    def count_failure(self, status: MailStatus, error: str) -> None:
        if status == MailStatus.FAILED:
            self.failed += 1
        else:
            self.retry += 1
        self.errors.append(error)


def deliver_chunk(
    sessions: sessionmaker[Session],
    transport: Transport,
    settings: Settings,
    run_id: int,
    subscriber_ids: Sequence[int],
) -> ChunkReport:
    """Send the digests of run `run_id` to `subscriber_ids` (those still owed one) over
    `transport`, each in short transactions of its own (see `sending`)."""
    batch = DigestBatch(settings, run_id, list(subscriber_ids))
    sending.send_batch(sessions, transport, batch)
    return batch.report


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every delivery of one chunk shares, loaded once."""

    period: Period
    give_up_at: datetime
    changes: list[ChangeView]
    announcements: list[AnnouncementView]
    topic_labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One digest ready to go: built in a short transaction, sent with none open."""

    mail_id: int  # the delivery's
    subscriber_id: int
    message: EmailMessage
    message_id: str
    item_count: int


class RelayAnswer(StrEnum):
    """What the relay said to one recipient of a pass, as far as soft bounces care."""

    SENT = "sent"
    REFUSED = "refused"  # temporarily


@dataclass(slots=True)
class DigestBatch:
    """The steps of delivering one chunk of a run, each on the session of its own short
    transaction (`sending.send_batch` runs them): claim, prepare (compose, render,
    address), record the outcome, and at the end count soft bounces and close the run."""

    settings: Settings
    run_id: int
    subscriber_ids: list[int]
    report: ChunkReport = field(default_factory=ChunkReport)
    shared: _Shared | None = None
    # What the relay said to each recipient of this pass, in order, with the delivery id;
    # of the refusals only the temporary ones (see count_soft_bounces).
    answers: list[tuple[RelayAnswer, int]] = field(default_factory=list)

    def begin(self, session: Session, now: datetime) -> list[int]:
        run = session.get(DigestRun, self.run_id)
        if run is None:
            return []
        period = Period(run.frequency, run.period_start, run.period_end)
        self.shared = _Shared(
            period,
            give_up_at(run),
            changes_in(session, period),
            published_at(session, period.end),
            topic_labels(session),
        )
        return list(
            session.scalars(
                select(Delivery.id)
                .where(
                    Delivery.run_id == self.run_id, Delivery.subscriber_id.in_(self.subscriber_ids)
                )
                .order_by(Delivery.subscriber_id)
            )
        )

    def _shared(self) -> _Shared:
        assert self.shared is not None, "begin() loads what the chunk shares"
        return self.shared

    def claim(self, session: Session, delivery_id: int, now: datetime) -> bool:
        if not claims.claim(session, Delivery, delivery_id, now):
            return False  # finished already, or another worker has it
        delivery = session.get_one(Delivery, delivery_id)
        if not claims.overdue(delivery, now, self._shared().give_up_at):
            return True
        claims.settle(
            delivery,
            MailStatus.FAILED,
            f"gave up after {delivery.attempts - 1} attempt(s), when the next period's "
            f"digest went out; last error: {delivery.error or 'none (its worker was lost)'}",
        )
        release_receipts(session, delivery.id)
        self.report.count_failure(
            MailStatus.FAILED, f"subscriber {delivery.subscriber_id}: {delivery.error}"
        )
        return False

    def prepare(self, session: Session, delivery_id: int, now: datetime) -> Outgoing | None:
        delivery = session.get_one(Delivery, delivery_id)
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        if subscriber is None or subscriber.status != Status.ACTIVE:
            self._skip(delivery, MailStatus.SKIPPED_INACTIVE)
            return None
        shared = self._shared()
        digest = digest_for(
            session, subscriber, shared.changes, shared.announcements, shared.period, delivery.id
        )
        wanted = [a.announcement_id for a in digest.announcements]
        held = reserve_receipts(session, subscriber.id, delivery.id, wanted)
        if len(held) < len(wanted):  # another mail to them carries some already
            kept = tuple(a for a in digest.announcements if a.announcement_id in held)
            digest = replace(digest, announcements=kept)
        if digest.is_empty:
            self._skip(delivery, MailStatus.SKIPPED_EMPTY)
            return None
        message_id = digest_message_id(self.settings, delivery.run_id, subscriber.id)
        return Outgoing(
            delivery.id,
            subscriber.id,
            digest_message(self.settings, digest, subscriber, message_id, shared.topic_labels, now),
            message_id,
            digest.item_count,
        )

    def _skip(self, delivery: Delivery, status: MailStatus) -> None:
        claims.settle(delivery, status)
        self.report.skipped += 1

    def record_sent(self, session: Session, outgoing: Outgoing, now: datetime) -> None:
        delivery = session.get_one(Delivery, outgoing.mail_id)
        claims.settle_sent(delivery, now)
        delivery.message_id = outgoing.message_id
        delivery.item_count = outgoing.item_count
        reached = session.get(Subscriber, outgoing.subscriber_id)
        if reached is not None:
            delivered(reached)
        self.answers.append((RelayAnswer.SENT, outgoing.mail_id))
        self.report.sent += 1

    def record_failure(
        self, session: Session, delivery_id: int, failure: SendError, now: datetime
    ) -> None:
        delivery = session.get_one(Delivery, delivery_id)
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        if failure.recipient and failure.permanent and subscriber is not None:
            delivery_failed(
                session,
                subscriber,
                str(failure),
                permanent=True,
                soft_limit=self.settings.soft_bounce_limit,
            )
        elif failure.recipient and not delivery.bounce_counted:
            self.answers.append((RelayAnswer.REFUSED, delivery_id))
        gone = subscriber is None or subscriber.status == Status.SUPPRESSED
        status = claims.settle_failure(
            delivery,
            str(failure),
            permanent=failure.permanent or gone,
            now=now,
            give_up_at=self._shared().give_up_at,
        )
        if status == MailStatus.FAILED:
            release_receipts(session, delivery.id)
        who = subscriber.email if subscriber is not None else f"subscriber {delivery.subscriber_id}"
        self.report.count_failure(status, f"{who}: {failure}")

    def end(self, session: Session, now: datetime) -> None:
        if self.shared is None:
            return  # the run is gone
        count_soft_bounces(session, self.settings, self.answers, self.report)
        complete_if_done(session, self.run_id)


def digest_message(
    settings: Settings,
    digest: Digest,
    subscriber: Subscriber,
    message_id: str,
    topic_labels: dict[str, str],
    now: datetime,
) -> EmailMessage:
    """The mail of one digest to `subscriber`: rendered, and addressed as all our mails are."""
    links = links_for(settings, subscriber)
    mail = render(digest, links, settings.tz, SERVICE_NAME, topic_labels)
    return build_message(
        mail,
        envelope(
            settings,
            to_address=subscriber.email,
            to_name=subscriber.name,
            message_id=message_id,
            unsubscribe_url=links.unsubscribe,
            date=now,
        ),
    )


def count_soft_bounces(
    session: Session,
    settings: Settings,
    answers: list[tuple[RelayAnswer, int]],
    report: ChunkReport,
) -> None:
    """Count a pass's temporary refusals as soft bounces: once per delivery, and only
    when the relay accepted someone after refusing this one. A relay that refuses everyone
    alike (greylisting, maintenance), or everyone from some point on (a rate limit), says
    nothing about the recipients."""
    counted: list[int] = []
    accepted_later = False
    for answer, delivery_id in reversed(answers):
        if answer == RelayAnswer.SENT:
            accepted_later = True
        elif accepted_later:
            counted.append(delivery_id)
    for delivery_id in reversed(counted):
        delivery = session.get_one(Delivery, delivery_id)
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        if delivery.bounce_counted or subscriber is None:
            continue
        delivery.bounce_counted = True
        delivery_failed(
            session,
            subscriber,
            delivery.error or "temporary refusal",
            permanent=False,
            soft_limit=settings.soft_bounce_limit,
        )
        if subscriber.status == Status.SUPPRESSED and delivery.status == MailStatus.PENDING:
            claims.settle(delivery, MailStatus.FAILED, f"address suppressed: {delivery.error}")
            release_receipts(session, delivery.id)
            report.retry, report.failed = report.retry - 1, report.failed + 1
