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
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest import SERVICE_NAME
from digest.announcements import published_at, received_by, record_receipts
from digest.compose import AnnouncementView, ChangeView, Digest, Recipient, compose
from digest.db import session_scope
from digest.links import links_for
from digest.mailer import Envelope, SendError, Transport, build_message, make_transport
from digest.models import Change, Delivery, DeliveryStatus, DigestRun, Item, RunStatus, Source
from digest.periods import Period
from digest.render import render
from digest.settings import Settings
from digest.watch.sources import SourcesFileError, load_sources
from subscribers.base import utcnow
from subscribers.models import Frequency, Status, Subscriber
from subscribers.service import delivered, delivery_failed

CHUNK_SIZE = 100
MAX_ATTEMPTS = 5
# A delivery left in `sending` this long was lost with its worker and is tried again.
STALE_CLAIM = timedelta(minutes=10)
SKIPPED_INACTIVE = "skipped_inactive"


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
        run = _find_run(session, period)
        assert run is not None
        return StartedRun(run.id, False, pending_chunks(session, run.id, utcnow()))
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
        run.status = RunStatus.COMPLETE.value
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


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        Delivery.status == DeliveryStatus.PENDING.value,
        and_(
            Delivery.status == DeliveryStatus.SENDING.value, Delivery.claimed_at < now - STALE_CLAIM
        ),
    )


def pending_chunks(session: Session, run_id: int, now: datetime) -> list[list[int]]:
    ids = session.scalars(
        select(Delivery.subscriber_id)
        .where(Delivery.run_id == run_id, _claimable(now))
        .order_by(Delivery.subscriber_id)
    ).all()
    return _chunked(list(ids))


def unfinished_chunks(session: Session, now: datetime) -> list[tuple[int, list[int]]]:
    """What the recovery sweep re-enqueues: claimable deliveries of runs not just started."""
    run_ids = session.scalars(
        select(DigestRun.id).where(
            DigestRun.status == RunStatus.RUNNING.value, DigestRun.created_at < now - STALE_CLAIM
        )
    ).all()
    result = []
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
            Delivery.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value]),
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


def deliver_chunk(
    settings: Settings,
    run_id: int,
    subscriber_ids: Sequence[int],
    transport: Transport | None = None,
) -> ChunkReport:
    transport = transport or make_transport(settings.smtp_url, settings.outbox_dir)
    return asyncio.run(_deliver_chunk(settings, run_id, list(subscriber_ids), transport))


@dataclass(frozen=True, slots=True)
class _ChunkContext:
    """What every delivery of one chunk shares, loaded once."""

    settings: Settings
    period: Period
    changes: list[ChangeView]
    announcements: list[AnnouncementView]
    topic_labels: dict[str, str]
    transport: Transport
    report: ChunkReport


def _topic_labels(settings: Settings) -> dict[str, str]:
    try:
        return load_sources(settings.sources_file).topics
    except SourcesFileError:
        return {}  # the mail then names topics by their keys; a broken file is reported elsewhere


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
            changes_in(session, period),
            published_at(session, period.end),
            _topic_labels(settings),
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
    with session_scope(settings.database_url) as session:
        complete_if_done(session, run_id)
    return report


async def _deliver_one(context: _ChunkContext, delivery_id: int) -> None:
    settings, period, report = context.settings, context.period, context.report
    changes, announcements, transport = context.changes, context.announcements, context.transport
    url = settings.database_url
    with session_scope(url) as session:
        now = utcnow()
        claimed = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, _claimable(now))
            .values(
                status=DeliveryStatus.SENDING.value, claimed_at=now, attempts=Delivery.attempts + 1
            )
        ).rowcount
    if not claimed:
        return  # finished already, or another worker has it
    with session_scope(url) as session:
        delivery = session.get_one(Delivery, delivery_id)
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        if subscriber is None or subscriber.status != Status.ACTIVE.value:
            delivery.status = SKIPPED_INACTIVE
            report.skipped += 1
            return
        received = received_by(session, subscriber.id)
        digest = compose(
            recipient_of(subscriber),
            changes,
            [a for a in announcements if a.announcement_id not in received],
            period,
        )
        if digest.is_empty:
            delivery.status = DeliveryStatus.SKIPPED_EMPTY.value
            report.skipped += 1
            return
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
        message = build_message(mail, envelope)
        attempts = delivery.attempts
    try:
        await transport.send(message)
    except SendError as exc:
        with session_scope(url) as session:
            delivery = session.get_one(Delivery, delivery_id)
            delivery.error = str(exc)[:2000]
            refused = session.get(Subscriber, subscriber.id)
            if exc.recipient and refused is not None:
                # A bounce says something about the address; a dead server does not.
                delivery_failed(
                    session,
                    refused,
                    str(exc),
                    permanent=exc.permanent,
                    soft_limit=settings.soft_bounce_limit,
                )
            gone = refused is not None and refused.status == Status.SUPPRESSED.value
            if exc.permanent or gone or attempts >= MAX_ATTEMPTS:
                delivery.status = DeliveryStatus.FAILED.value
                report.failed += 1
            else:
                delivery.status = DeliveryStatus.PENDING.value
                report.retry += 1
            report.errors.append(f"{subscriber.email}: {exc}")
        return
    with session_scope(url) as session:
        delivery = session.get_one(Delivery, delivery_id)
        delivery.status = DeliveryStatus.SENT.value
        delivery.sent_at = utcnow()
        delivery.message_id = envelope.message_id
        delivery.item_count = digest.item_count
        delivery.error = None
        reached = session.get(Subscriber, subscriber.id)
        if reached is not None:
            delivered(reached)
        record_receipts(
            session, subscriber.id, delivery_id, [a.announcement_id for a in digest.announcements]
        )
    report.sent += 1
