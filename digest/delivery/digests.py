"""The digest each subscriber gets for a period, shown (`preview`) or delivered a chunk
at a time (`deliver_chunk`).

A chunk is one short transaction that loads what its digests share (the run, the
period's changes, the announcements, the topic labels), its subscribers and their
announcement receipts, claims its deliveries in one statement, reserves the
announcements its mails carry and settles those it skips; then, with no transaction
open, each digest is composed (pure), rendered once per distinct content, and handed to
the relay; the outcomes are recorded in batches (see `sending`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, select, update
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
from digest.core.roles import audiences_for, audiences_of, role_audiences
from digest.core.settings import Settings
from digest.core.topics import topic_labels
from digest.delivery import carried, claims, outcomes, relay_state, sending
from digest.delivery.announcements import (
    Reservation,
    held_receipts,
    published_at,
    received_by,
    received_from,
    release_receipts,
    reserve_receipts,
)
from digest.delivery.claims import Outcome, Verdict
from digest.delivery.outcomes import DELIVERIES, Sent
from digest.delivery.runs import complete_if_done, give_up_at
from digest.delivery.sendable import sendable_between
from digest.mail.compose import AnnouncementView, ChangeView, Digest, compose, recipient_of
from digest.mail.envelopes import digest_message_id, envelope
from digest.mail.letter import Letterhead
from digest.mail.links import links_for
from digest.mail.mailer import Transport
from digest.mail.render import MailLinks, digest_template
from digest.mail.wire import Wire, digest_wire
from subscribers.base import utcnow
from subscribers.models import Frequency, Status, Subscriber
from subscribers.suppression import delivery_failed


def changes_in(session: Session, period: Period) -> list[ChangeView]:
    """The changes a digest for `period` may hold (`sendable.sendable_between`: those sent
    without review that were detected in it, and those an editor approved in it; hidden
    and waiting ones never)."""
    rows = session.execute(
        select(Change, Source.key, Source.name, Source.topics, Source.audiences)
        .join(Item, Change.item_id == Item.id)
        .join(Source, Item.source_id == Source.id)
        .where(sendable_between(period.start, period.end))
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
            source_audiences=tuple(audiences or ()),
        )
        for c, key, name, topics, audiences in rows
    ]


def digest_for(
    session: Session,
    subscriber: Subscriber,
    changes: Sequence[ChangeView],
    announcements: Sequence[AnnouncementView],
    period: Period,
) -> Digest:
    """The digest `subscriber` gets for `period` (`compose_for`), with the announcements
    they have had, or are getting in another mail, and their role's audiences, read from
    the database."""
    received = received_by(session, subscriber.id) if announcements else set()
    audiences = audiences_for(session, subscriber.role) if subscriber.role_only else ()
    return compose_for(subscriber, changes, announcements, period, received, audiences)


def compose_for(
    subscriber: Subscriber,
    changes: Sequence[ChangeView],
    announcements: Sequence[AnnouncementView],
    period: Period,
    received: Collection[int],
    audiences: tuple[str, ...] = (),
) -> Digest:
    """The digest `subscriber` gets for `period`: their changes (of the sources written
    for `audiences`, if they are narrowed to their role's: see digest.core.roles), and the
    announcements they have not had yet (`received`: had, or on their way in another
    mail). Previews and deliveries both compose through here.

    In an immediate run, a daily or weekly subscriber is there only for the announcements
    sent with the next immediate run: they get those and nothing else (their changes come
    in their own digest)."""
    if period.frequency == Frequency.IMMEDIATE and subscriber.frequency != Frequency.IMMEDIATE:
        changes = []
        announcements = [a for a in announcements if a.send_immediately]
    return compose(
        recipient_of(subscriber, audiences),
        list(changes),
        [a for a in announcements if a.announcement_id not in received],
        period,
    )


@dataclass(slots=True)
class Composer:
    """`compose_for` for many subscribers of one period: those who would get the same
    digest (the same frequency, topics, role, audiences, municipality and announcements
    not had) share one composing, each with themselves as its recipient. `roles`: the
    audiences of each role (`role_audiences`), loaded once for all of them."""

    changes: Sequence[ChangeView]
    announcements: Sequence[AnnouncementView]
    period: Period
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _done: dict[tuple[object, ...], Digest] = field(default_factory=dict)

    def digest(self, subscriber: Subscriber, received: Collection[int]) -> Digest:
        audiences = audiences_of(self.roles, subscriber)
        recipient = recipient_of(subscriber, audiences)
        had = frozenset(a.announcement_id for a in self.announcements) & frozenset(received)
        key = (
            recipient.frequency,
            recipient.topics,
            recipient.role,
            recipient.audiences,
            recipient.municipality,
            had,
        )
        digest = self._done.get(key)
        if digest is None:
            digest = compose_for(
                subscriber, self.changes, self.announcements, self.period, had, audiences
            )
            self._done[key] = digest
        return replace(digest, recipient=recipient)


def preview(session: Session, period: Period) -> list[Digest]:
    """What a run for `period` would send now, to whom; sends and stores nothing."""
    changes = changes_in(session, period)
    announcements = published_at(session, period.end)
    subscribers = session.scalars(
        select(Subscriber)
        .where(Subscriber.frequency == period.frequency, Subscriber.status == Status.ACTIVE)
        .order_by(Subscriber.email)
    ).all()
    receipts = held_receipts(session, [s.id for s in subscribers]) if announcements else {}
    roles = role_audiences(session)
    return [
        compose_for(
            s,
            changes,
            announcements,
            period,
            received_from(receipts.get(s.id, {})),
            audiences_of(roles, s),
        )
        for s in subscribers
    ]


@dataclass(slots=True)
class ChunkReport:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retry: int = 0  # deliveries of the chunk left pending, to try again later
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


def deliver_chunk(
    sessions: sessionmaker[Session],
    sender: sending.Outlet | Transport,
    settings: Settings,
    run_id: int,
    subscriber_ids: Sequence[int],
) -> ChunkReport:
    """Send the digests of run `run_id` to `subscriber_ids` (those still owed one) through
    `sender` (the process's pool, or a transport), in one transaction to claim them and
    batches of outcomes recorded after (see the module docstring). sending.NotRecorded
    when the database stayed away at the end."""
    chunk = Chunk(settings, run_id, sorted(set(subscriber_ids)))
    with sending.outlet_of(sender, settings) as outlet:
        mails = chunk.begin(sessions, utcnow())
        if chunk.shared is None:
            return chunk.report  # the run is gone
        chunk.outlet = outlet
        sending.send_batch(sessions, outlet, settings, chunk, mails)
    return chunk.report


@dataclass(frozen=True, slots=True)
class Shared:
    """What every delivery of one chunk shares, loaded once."""

    period: Period
    give_up_at: datetime
    changes: list[ChangeView]
    announcements: list[AnnouncementView]
    topic_labels: dict[str, str]
    letterhead: Letterhead


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One digest ready to go: composed in the chunk's transaction, built with none open."""

    mail_id: int  # the delivery's
    subscriber_id: int
    digest: Digest
    links: MailLinks
    email: str
    name: str
    message_id: str


@dataclass(slots=True)
class Chunk:
    """One chunk of a run: `begin` claims and composes in one transaction, `build` makes
    each mail, `record` records a batch of outcomes (and, the last time, closes)."""

    settings: Settings
    run_id: int
    subscriber_ids: list[int]
    report: ChunkReport = field(default_factory=ChunkReport)
    shared: Shared | None = None
    claimed_at: datetime | None = None
    attempts: dict[int, int] = field(default_factory=dict)  # by delivery, this one counted
    outlet: sending.Outlet | None = None
    # For the archive (see `carried`): whether the run's first sending is recorded, the
    # announcements each mail carries (by delivery), and those this chunk recorded.
    marked: bool = False
    carries: dict[int, tuple[int, ...]] = field(default_factory=dict)
    announced: set[int] = field(default_factory=set)

    def begin(self, sessions: sessionmaker[Session], now: datetime) -> list[Outgoing]:
        """Record what journals left behind, then claim and compose, in one transaction."""
        return outcomes.claim_after_replay(
            sessions, self.settings, DELIVERIES, lambda s, journaled: self.claim(s, now, journaled)
        )

    def claim(self, session: Session, now: datetime, journaled: set[int]) -> list[Outgoing]:
        # The claim first, so that SQLite's write lock is the transaction's first step:
        # where the driver begins transactions at the first read, one that read before it
        # writes fails at once (no busy wait) when another worker wrote meanwhile.
        self.claimed_at = now
        claimed = claims.claim_where(
            session,
            Delivery,
            and_(Delivery.run_id == self.run_id, Delivery.subscriber_id.in_(self.subscriber_ids)),
            now,
            timedelta(seconds=self.settings.stale_claim_seconds),
            excluded=journaled,
        )
        run = session.get(DigestRun, self.run_id)
        if run is None:
            return []
        self.marked = run.first_sent_at is not None
        period = Period(run.frequency, run.period_start, run.period_end)
        shared = self.shared = Shared(
            period,
            give_up_at(run),
            changes_in(session, period),
            published_at(session, period.end),
            topic_labels(session),
            Letterhead.of(self.settings),
        )
        failed: dict[int, str] = {}  # the reason, by delivery
        live: dict[int, int] = {}  # delivery by subscriber
        for delivery_id, subscriber_id, attempts, error in claimed:
            self.attempts[delivery_id] = attempts
            if claims.overdue(attempts, now, shared.give_up_at):
                failed[delivery_id] = (
                    f"gave up after {attempts - 1} attempt(s), when the next period's digest "
                    f"went out; last error: {error or 'none (its worker was lost)'}"
                )
                self.report.errors.append(f"subscriber {subscriber_id}: {error}")
            else:
                live[subscriber_id] = delivery_id
        subscribers = session.scalars(
            select(Subscriber).where(Subscriber.id.in_(sorted(live))).order_by(Subscriber.id)
        ).all()
        receipts = held_receipts(session, list(live)) if shared.announcements else {}
        digests: dict[int, Digest] = {}
        skipped: dict[int, MailStatus] = {d: MailStatus.SKIPPED_INACTIVE for d in live.values()}
        # One query for the chunk, and none when no one in it is narrowed to their role.
        roles = role_audiences(session) if any(s.role_only for s in subscribers) else {}
        composer = Composer(shared.changes, shared.announcements, period, roles)
        for subscriber in subscribers:
            if subscriber.status != Status.ACTIVE:
                continue
            delivery_id = live[subscriber.id]
            try:
                received = received_from(receipts.get(subscriber.id, {}), delivery_id)
                digests[delivery_id] = composer.digest(subscriber, received)
            except Exception as exc:  # a corrupt row fails this mail alone
                failed[delivery_id] = str(claims.build_failure(exc))
                self.report.errors.append(f"{subscriber.email}: {exc}")
            del skipped[delivery_id]
        held = reserve_receipts(
            session,
            [
                Reservation(
                    delivery_id,
                    digest.recipient.subscriber_id,
                    tuple(a.announcement_id for a in digest.announcements),
                    receipts.get(digest.recipient.subscriber_id, {}),
                )
                for delivery_id, digest in digests.items()
                if digest.announcements
            ],
        )
        mails: list[Outgoing] = []
        by_id = {s.id: s for s in subscribers}
        for delivery_id, digest in digests.items():
            holds = held.get(delivery_id, set())
            if len(holds) < len(digest.announcements):  # another mail carries some already
                kept = tuple(a for a in digest.announcements if a.announcement_id in holds)
                digest = replace(digest, announcements=kept)
            if digest.is_empty:
                skipped[delivery_id] = MailStatus.SKIPPED_EMPTY
                continue
            subscriber = by_id[digest.recipient.subscriber_id]
            if digest.announcements:
                self.carries[delivery_id] = tuple(a.announcement_id for a in digest.announcements)
            mails.append(
                Outgoing(
                    delivery_id,
                    subscriber.id,
                    digest,
                    links_for(self.settings, subscriber),
                    subscriber.email,
                    subscriber.name,
                    digest_message_id(self.settings, self.run_id, subscriber.id),
                )
            )
        self._settle_at_claim(session, skipped, failed)
        return mails

    def _settle_at_claim(
        self, session: Session, skipped: Mapping[int, MailStatus], failed: Mapping[int, str]
    ) -> None:
        """Skips and give-ups, decided at the claim: one statement each kind."""
        for status in (MailStatus.SKIPPED_INACTIVE, MailStatus.SKIPPED_EMPTY):
            ids = sorted(d for d, s in skipped.items() if s == status)
            if ids:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(ids))
                    .values(status=status, error=None, retry_at=None)
                    .execution_options(synchronize_session=False)
                )
                self.report.skipped += len(ids)
        if failed:
            now = self.claimed_at or utcnow()
            claims.settle_failures(
                session,
                Delivery,
                [Outcome(d, 0, Verdict.FAILED, reason) for d, reason in failed.items()],
                settings=self.settings,
                now=now,
                claimed_at=now,
                attempts=self.attempts.__getitem__,
                give_up_at=lambda _: self._shared().give_up_at,
                resume_at=now,
            )
            release_receipts(session, list(failed))
            self.report.failed += len(failed)

    def _shared(self) -> Shared:
        assert self.shared is not None, "claim() loads what the chunk shares"
        return self.shared

    def sent(self, mail: Outgoing, at: datetime) -> Sent:
        item_count = mail.digest.item_count
        return Sent(DELIVERIES, mail.mail_id, mail.subscriber_id, at, mail.message_id, item_count)

    def build(self, mail: Outgoing) -> Wire:
        """One reader's mail: the chunk's rendering of its content (each distinct content
        rendered once), filled with their address and links, put on the wire."""
        template = digest_template(
            mail.digest,
            self.settings.tz,
            SERVICE_NAME,
            self._shared().topic_labels,
            self._shared().letterhead,
        )
        mail_envelope = envelope(
            self.settings,
            to_address=mail.email,
            to_name=mail.name,
            message_id=mail.message_id,
            unsubscribe_url=mail.links.unsubscribe,
            date=utcnow(),
        )
        return digest_wire(template, mail_envelope, mail.links, mail.email)

    def record(self, session: Session, batch: list[Outcome], final: bool) -> Callable[[], None]:
        """Record a batch of outcomes (one statement for the sent, one for the others,
        and a few for the bounces; for the archive, one for the announcements the sent
        ones carried that this chunk has not recorded yet, and one for the run's first
        sending until it is recorded); the last time, close the chunk: the run if it is
        done, the relay's state, and what is left pending. Returns what to count once
        committed."""
        now = utcnow()
        shared = self._shared()
        sent_now = [o.sent for o in batch if o.sent is not None]
        outcomes.record_sent(session, sent_now)
        # The announcements before the run's row: in the order every recording takes.
        carrying = {a for s in sent_now for a in self.carries.get(s.mail_id, ())} - self.announced
        carried.record_carried(session, self.run_id, carrying)
        marking = bool(sent_now) and not self.marked
        if marking:
            carried.mark_sent(session, self.run_id, min(s.sent_at for s in sent_now))
        assert self.claimed_at is not None
        settled = claims.settle_failures(
            session,
            Delivery,
            [o for o in batch if o.verdict != Verdict.SENT],
            settings=self.settings,
            now=now,
            claimed_at=self.claimed_at,
            attempts=self.attempts.__getitem__,
            give_up_at=lambda _: shared.give_up_at,
            resume_at=sending.resume_at(self.settings, self.outlet, now),
        )
        failed = {o.mail_id for o, status, _ in settled if status == MailStatus.FAILED}
        errors = [f"subscriber {o.subscriber_id}: {reason}" for o, _, reason in settled]
        failed |= self._bounces(session, [o for o, _, _ in settled])
        release_receipts(session, failed)
        claimed_at: datetime | None = self.claimed_at
        if not final:
            claimed_at = claims.renew(
                session,
                Delivery,
                and_(
                    Delivery.run_id == self.run_id, Delivery.subscriber_id.in_(self.subscriber_ids)
                ),
                self.claimed_at,
                now,
                timedelta(seconds=self.settings.stale_claim_seconds),
            )
        left: list[tuple[int, datetime | None]] = []
        if final:
            if self.outlet is not None:
                relay_state.save(session, self.outlet.breaker, now)
            complete_if_done(session, self.run_id)
            left = [
                (subscriber_id, retry_at)
                for subscriber_id, retry_at in session.execute(
                    select(Delivery.subscriber_id, Delivery.retry_at)
                    .where(
                        Delivery.run_id == self.run_id,
                        Delivery.subscriber_id.in_(self.subscriber_ids),
                        Delivery.status == MailStatus.PENDING,
                    )
                    .order_by(Delivery.subscriber_id)
                )
            ]
        sent = sum(1 for o in batch if o.verdict == Verdict.SENT)

        def count() -> None:
            self.claimed_at = claimed_at
            self.marked |= marking
            self.announced |= carrying
            self.report.sent += sent
            self.report.failed += len(failed)
            self.report.errors.extend(errors)
            if final:
                self.report.retry_ids = [subscriber_id for subscriber_id, _ in left]
                self.report.retry = len(left)
                self.report.next_try_at = min(
                    (retry_at or now for _, retry_at in left), default=None
                )

        return count

    def _bounces(self, session: Session, settled: list[Outcome]) -> set[int]:
        """Suppress the addresses the relay refused for good, and count the soft bounces
        (once per delivery); the deliveries that failed because their address is now
        suppressed."""
        hard = {o.subscriber_id: o for o in settled if o.permanent_bounce}
        soft = {o.mail_id: o for o in settled if o.verdict == Verdict.BOUNCED}
        if soft:
            counting = session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(sorted(soft)), Delivery.bounce_counted.is_(False))
                .values(bounce_counted=True)
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            ).all()
            soft = {d: soft[d] for d in counting}
        if not hard and not soft:
            return set()
        people = {
            s.id: s
            for s in session.scalars(
                select(Subscriber).where(
                    Subscriber.id.in_({*hard, *(o.subscriber_id for o in soft.values())})
                )
            )
        }
        for subscriber_id, outcome in hard.items():
            if (person := people.get(subscriber_id)) is not None:
                delivery_failed(
                    session,
                    person,
                    outcome.reason,
                    permanent=True,
                    soft_limit=self.settings.soft_bounce_limit,
                )
        suppressed: set[int] = set()
        for delivery_id, outcome in soft.items():
            if (person := people.get(outcome.subscriber_id)) is None:
                continue
            delivery_failed(
                session,
                person,
                outcome.reason,
                permanent=False,
                soft_limit=self.settings.soft_bounce_limit,
            )
            if person.status == Status.SUPPRESSED:
                suppressed.add(delivery_id)
        if suppressed:
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(sorted(suppressed)), Delivery.status == MailStatus.PENDING)
                .values(status=MailStatus.FAILED, error="address suppressed after soft bounces")
                .execution_options(synchronize_session=False)
            )
        return suppressed
