"""DigestRun and Delivery lifecycle: start a run, fan out, deliver a chunk, recover the rest.

The database is the truth: a run is unique per (frequency, period) and a delivery per
(run, subscriber); a delivery is claimed with a conditional update, so two workers
never send the same digest, and a lost message is found again by `unfinished_chunks`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest import SERVICE_NAME
from digest.core.db import session_scope
from digest.core.models import Change, Delivery, DigestRun, Item, MailStatus, RunStatus, Source
from digest.core.periods import Period
from digest.core.settings import Settings
from digest.core.topics import topic_labels
from digest.delivery import claims
from digest.delivery.announcements import published_at, received_by, record_receipts
from digest.mail.compose import AnnouncementView, ChangeView, Digest, Recipient, compose
from digest.mail.links import links_for
from digest.mail.mailer import Envelope, SendError, Transport, build_message, make_transport
from digest.mail.render import render
from subscribers.base import utcnow
from subscribers.models import Frequency, Status, Subscriber
from subscribers.service import delivered, delivery_failed

CHUNK_SIZE = 100


@dataclass(slots=True)
class StartedRun:
    run_id: int
    created: bool
    chunks: list[list[int]] = field(default_factory=list)


def start_run(session: Session, period: Period) -> StartedRun:
    """Create the run and its deliveries (one per active subscriber), or find the existing run."""
    existing = _find_run(session, period)
    if existing is not None:
        return StartedRun(existing.id, False, pending_chunks(session, existing.id, utcnow()))
    try:
        with session.begin_nested():
            run = DigestRun(
                frequency=period.frequency.value,
                period_start=period.start,
                period_end=period.end,
                status=RunStatus.RUNNING.value,
                created_at=utcnow(),
            )
            session.add(run)
            session.flush()
    except IntegrityError:
        # Another process started the same run first; theirs is the one.
        theirs = _find_run(session, period)
        assert theirs is not None
        return StartedRun(theirs.id, False, pending_chunks(session, theirs.id, utcnow()))
    subscriber_ids = session.scalars(
        select(Subscriber.id)
        .where(
            Subscriber.frequency == period.frequency.value,
            Subscriber.status == Status.ACTIVE.value,
        )
        .order_by(Subscriber.id)
    ).all()
    session.add_all(Delivery(run_id=run.id, subscriber_id=sid) for sid in subscriber_ids)
    if not subscriber_ids:
        run.status = RunStatus.COMPLETE
        run.completed_at = utcnow()
    session.flush()
    return StartedRun(run.id, True, _chunked(list(subscriber_ids)))


def _find_run(session: Session, period: Period) -> DigestRun | None:
    return session.scalar(
        select(DigestRun).where(
            DigestRun.frequency == period.frequency.value, DigestRun.period_start == period.start
        )
    )


def _chunked(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + CHUNK_SIZE] for i in range(0, len(ids), CHUNK_SIZE)]


def pending_chunks(session: Session, run_id: int, now: datetime) -> list[list[int]]:
    ids = session.scalars(
        select(Delivery.subscriber_id)
        .where(Delivery.run_id == run_id, claims.claimable(Delivery, now))
        .order_by(Delivery.subscriber_id)
    ).all()
    return _chunked(list(ids))


def unfinished_chunks(session: Session, now: datetime) -> list[tuple[int, list[int]]]:
    """What the recovery sweep re-enqueues: claimable deliveries of runs not just started."""
    run_ids = session.scalars(
        select(DigestRun.id).where(
            DigestRun.status == RunStatus.RUNNING.value,
            DigestRun.created_at < now - claims.STALE_CLAIM,
        )
    ).all()
    result: list[tuple[int, list[int]]] = []
    for run_id in run_ids:
        chunks = pending_chunks(session, run_id, now)
        if chunks:
            result.extend((run_id, chunk) for chunk in chunks)
        else:
            complete_if_done(session, run_id)
    return result


def complete_if_done(session: Session, run_id: int) -> bool:
    open_count = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.run_id == run_id,
            Delivery.status.in_([MailStatus.PENDING.value, MailStatus.SENDING.value]),
        )
    )
    if open_count:
        return False
    session.execute(
        update(DigestRun)
        .where(DigestRun.id == run_id, DigestRun.status == RunStatus.RUNNING.value)
        .values(status=RunStatus.COMPLETE.value, completed_at=utcnow())
    )
    return True


def run_counts(session: Session, run_id: int) -> Counter[str]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.run_id == run_id)
        .group_by(Delivery.status)
    ).all()
    return Counter({status: count for status, count in rows})


def changes_in(session: Session, period: Period) -> list[ChangeView]:
    rows = session.execute(
        select(Change, Source.key, Source.name, Source.topics)
        .join(Item, Change.item_id == Item.id)
        .join(Source, Item.source_id == Source.id)
        .where(Change.detected_at >= period.start, Change.detected_at < period.end)
        .order_by(Change.detected_at, Change.id)
    ).all()
    return [
        ChangeView(
            c.id,
            c.item_id,
            c.kind,
            c.detected_at,
            c.title,
            c.url,
            c.summary_text,
            c.published_at,
            c.note,
            key,
            name,
            tuple(topics or ()),
        )
        for c, key, name, topics in rows
    ]


def recipient_of(subscriber: Subscriber) -> Recipient:
    return Recipient(
        subscriber.id,
        subscriber.email,
        subscriber.name,
        subscriber.frequency,
        tuple(subscriber.topics or ()),
        subscriber.language or "nb",
    )


def message_id(settings: Settings, run_id: int, subscriber_id: int) -> str:
    # Derived, not random: a resend after a crash carries the same Message-ID.
    return f"digest-run{run_id}-sub{subscriber_id}@{settings.mail_domain}"


def preview(session: Session, settings: Settings, period: Period) -> list[Digest]:
    """What a run for `period` would send now, to whom; sends and stores nothing."""
    changes = changes_in(session, period)
    announcements = published_at(session, period.end)
    subscribers = session.scalars(
        select(Subscriber)
        .where(
            Subscriber.frequency == period.frequency.value, Subscriber.status == Status.ACTIVE.value
        )
        .order_by(Subscriber.email)
    ).all()
    digests = []
    for subscriber in subscribers:
        received = received_by(session, subscriber.id)
        digests.append(
            compose(
                recipient_of(subscriber),
                changes,
                [a for a in announcements if a.announcement_id not in received],
                period,
            )
        )
    return digests


@dataclass(slots=True)
class ChunkReport:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retry: int = 0  # temporary failures left pending for another try
    errors: list[str] = field(default_factory=list)

    def count_failure(self, status: MailStatus, error: str) -> None:
        if status == MailStatus.FAILED:
            self.failed += 1
        else:
            self.retry += 1
        self.errors.append(error)


def deliver_chunk(
    settings: Settings,
    run_id: int,
    subscriber_ids: Sequence[int],
    transport: Transport | None = None,
) -> ChunkReport:
    transport = transport or make_transport(settings.smtp_url, settings.outbox_dir)
    return asyncio.run(_deliver_chunk(settings, run_id, list(subscriber_ids), transport))


def give_up_at(run: DigestRun) -> datetime:
    """When a delivery of `run` that keeps failing for now fails for good: when the next
    period's digest goes out (counted from the run's start when it was started late)."""
    return max(run.period_end, run.created_at) + (run.period_end - run.period_start)


@dataclass(frozen=True, slots=True)
class _ChunkContext:
    """What every delivery of one chunk shares, loaded once, and what the pass found."""

    settings: Settings
    period: Period
    give_up_at: datetime
    changes: list[ChangeView]
    announcements: list[AnnouncementView]
    topic_labels: dict[str, str]
    transport: Transport
    report: ChunkReport
    # What the relay said to each recipient of this pass, in order: ("sent" | "refused",
    # delivery id), temporary refusals only (see _count_soft_bounces).
    answers: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """One digest ready to go: built in a short transaction, sent with none open."""

    delivery_id: int
    subscriber_id: int
    message: EmailMessage
    message_id: str
    item_count: int
    announcement_ids: list[int]


async def _deliver_chunk(
    settings: Settings, run_id: int, subscriber_ids: list[int], transport: Transport
) -> ChunkReport:
    report = ChunkReport()
    with session_scope(settings.database_url) as session:
        run = session.get(DigestRun, run_id)
        if run is None:
            return report
        period = Period(Frequency(run.frequency), run.period_start, run.period_end)
        context = _ChunkContext(
            settings,
            period,
            give_up_at(run),
            changes_in(session, period),
            published_at(session, period.end),
            topic_labels(session),
            transport,
            report,
        )
        delivery_ids = session.scalars(
            select(Delivery.id)
            .where(Delivery.run_id == run_id, Delivery.subscriber_id.in_(subscriber_ids))
            .order_by(Delivery.subscriber_id)
        ).all()
    try:
        for delivery_id in delivery_ids:
            await _deliver_one(context, delivery_id)
    finally:
        await transport.close()
    _count_soft_bounces(context)
    with session_scope(settings.database_url) as session:
        complete_if_done(session, run_id)
    return report


async def _deliver_one(context: _ChunkContext, delivery_id: int) -> None:
    """Claim, build, send and record one digest; any failure stays with this one mail."""
    if not _claim(context, delivery_id):
        return
    outgoing = _prepare(context, delivery_id)
    if outgoing is None:
        return
    try:
        await context.transport.send(outgoing.message)
    except Exception as exc:  # whatever it is, it is this mail's failure, not the chunk's
        _record_failure(context, delivery_id, claims.send_failure(exc, context.transport))
        return
    _record_sent(context, outgoing)


def _claim(context: _ChunkContext, delivery_id: int) -> bool:
    with session_scope(context.settings.database_url) as session:
        now = utcnow()
        if not claims.claim(session, Delivery, delivery_id, now):
            return False  # finished already, or another worker has it
        delivery = session.get_one(Delivery, delivery_id)
        if not claims.overdue(delivery, now, context.give_up_at):
            return True
        claims.settle(
            delivery,
            MailStatus.FAILED,
            f"gave up after {delivery.attempts - 1} attempt(s), when the next period's "
            f"digest went out; last error: {delivery.error or 'none (its worker was lost)'}",
        )
        context.report.count_failure(
            MailStatus.FAILED, f"subscriber {delivery.subscriber_id}: {delivery.error}"
        )
        return False


def _prepare(context: _ChunkContext, delivery_id: int) -> _Outgoing | None:
    """The message for a claimed delivery, or None when it was skipped or failed here."""
    try:
        with session_scope(context.settings.database_url) as session:
            return _compose_message(context, session, session.get_one(Delivery, delivery_id))
    except Exception as exc:  # a corrupt row or a bug fails this one mail, with its reason
        _record_failure(context, delivery_id, claims.build_failure(exc))
        return None


def _compose_message(
    context: _ChunkContext, session: Session, delivery: Delivery
) -> _Outgoing | None:
    settings, report = context.settings, context.report
    subscriber = session.get(Subscriber, delivery.subscriber_id)
    if subscriber is None or subscriber.status != Status.ACTIVE.value:
        claims.settle(delivery, MailStatus.SKIPPED_INACTIVE)
        report.skipped += 1
        return None
    received = received_by(session, subscriber.id)
    digest = compose(
        recipient_of(subscriber),
        context.changes,
        [a for a in context.announcements if a.announcement_id not in received],
        context.period,
    )
    if digest.is_empty:
        claims.settle(delivery, MailStatus.SKIPPED_EMPTY)
        report.skipped += 1
        return None
    links = links_for(settings, subscriber)
    mail = render(digest, links, settings.tz, SERVICE_NAME, context.topic_labels)
    envelope = Envelope(
        from_address=settings.from_address,
        from_name=settings.from_name,
        to_address=subscriber.email,
        to_name=subscriber.name,
        message_id=message_id(settings, delivery.run_id, subscriber.id),
        list_id=f"{SERVICE_NAME} <digest.{settings.mail_domain}>",
        unsubscribe_url=links.unsubscribe,
        date=utcnow(),
    )
    return _Outgoing(
        delivery.id,
        subscriber.id,
        build_message(mail, envelope),
        envelope.message_id,
        digest.item_count,
        [a.announcement_id for a in digest.announcements],
    )


def _record_failure(context: _ChunkContext, delivery_id: int, failure: SendError) -> None:
    settings = context.settings
    with session_scope(settings.database_url) as session:
        delivery = session.get_one(Delivery, delivery_id)
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        if failure.recipient and failure.permanent and subscriber is not None:
            delivery_failed(
                session,
                subscriber,
                str(failure),
                permanent=True,
                soft_limit=settings.soft_bounce_limit,
            )
        elif failure.recipient and not delivery.bounce_counted:
            context.answers.append(("refused", delivery_id))
        gone = subscriber is None or subscriber.status == Status.SUPPRESSED.value
        status = claims.settle_failure(
            delivery,
            str(failure),
            permanent=failure.permanent or gone,
            now=utcnow(),
            give_up_at=context.give_up_at,
        )
        who = subscriber.email if subscriber is not None else f"subscriber {delivery.subscriber_id}"
    context.report.count_failure(status, f"{who}: {failure}")


def _record_sent(context: _ChunkContext, outgoing: _Outgoing) -> None:
    with session_scope(context.settings.database_url) as session:
        delivery = session.get_one(Delivery, outgoing.delivery_id)
        claims.settle_sent(delivery, utcnow())
        delivery.message_id = outgoing.message_id
        delivery.item_count = outgoing.item_count
        reached = session.get(Subscriber, outgoing.subscriber_id)
        if reached is not None:
            delivered(reached)
        record_receipts(
            session, outgoing.subscriber_id, outgoing.delivery_id, outgoing.announcement_ids
        )
    context.answers.append(("sent", outgoing.delivery_id))
    context.report.sent += 1


def _count_soft_bounces(context: _ChunkContext) -> None:
    """Count this pass's temporary refusals as soft bounces: once per delivery, and only
    when the relay accepted someone after refusing this one. A relay that refuses everyone
    alike (greylisting, maintenance), or everyone from some point on (a rate limit), says
    nothing about the recipients."""
    counted: list[int] = []
    accepted_later = False
    for answer, delivery_id in reversed(context.answers):
        if answer == "sent":
            accepted_later = True
        elif accepted_later:
            counted.append(delivery_id)
    if not counted:
        return
    report = context.report
    with session_scope(context.settings.database_url) as session:
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
                soft_limit=context.settings.soft_bounce_limit,
            )
            if (
                subscriber.status == Status.SUPPRESSED.value
                and delivery.status == MailStatus.PENDING
            ):
                claims.settle(delivery, MailStatus.FAILED, f"address suppressed: {delivery.error}")
                report.retry, report.failed = report.retry - 1, report.failed + 1
