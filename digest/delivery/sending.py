"""Handing a batch of mails to the relay and recording what it said, for digests and
notices alike. The one module that opens their sessions.

DESIGN.md: no transaction is held across network I/O (on SQLite a long transaction locks
the whole database, and a relay can take minutes). A batch claims and builds its mails in
one short transaction (the batch's own), hands them to the relay with none open (the
process's SMTP pool, several in flight, or one transport, one at a time), and records
the outcomes in batches (`Recorder`: every RECORD_EVERY outcomes or RECORD_INTERVAL
seconds, one transaction), not one commit per mail. A mail the relay accepted is written
to the batch's journal (`outcomes`) before it is recorded, and an outcome that cannot be
recorded (the database is away) is kept and tried again with backoff.

What the relay says is judged here (`Judge`): a refusal of the recipient followed by an
acceptance of someone else is the recipient's (a soft bounce), and a 5xx refusal of the
transaction so followed is the mail's (its content: failed, nobody suppressed); the same
refusal for everyone from some point on (the breaker's count of them), any failure of
the relay or the connection, and the refusals such a failure follows, are the relay's,
costing the mails nothing (their attempt is not counted); refusals nothing follows are
not counted either, but give up by age (`Judge.close`). While the relay breaker is open
(`relay_failure_limit` failures of the relay in a row, or the same deferral for that many
recipients), the batch stops handing mails over and leaves the rest for when the pause
ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol, TypeVar, cast

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from digest.core.errors import DigestError
from digest.core.settings import Settings
from digest.delivery import claims
from digest.delivery.claims import Outcome, Verdict
from digest.delivery.outcomes import Journal, Sent, folder_of
from digest.mail.mailer import SendError, Transport
from digest.mail.pool import RelayBreaker
from digest.mail.wire import Wire
from subscribers.base import utcnow

log = logging.getLogger(__name__)

RECORD_EVERY = 100
RECORD_INTERVAL = 1.0  # seconds
# How long a batch keeps trying to record its last outcomes while the database is away
# before it leaves them in its journal (and its failures to the stale-claim sweep).
RECORD_PATIENCE = 60.0  # seconds
RECORD_BACKOFF = (0.5, 8.0)  # seconds: first wait, longest wait


class NotRecorded(DigestError):
    """The database stayed away after a batch's mails went out: what the relay accepted
    is in the journal (recorded by the next batch or the sweep); the rest is sent again
    once its claims are stale."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: the database is away; the sent ones are kept in the journal")


class Breaker(Protocol):
    """The relay as one process sees it (`digest.mail.pool.RelayBreaker`)."""

    @property
    def paused_until(self) -> datetime | None: ...
    @property
    def failures_in_row(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def pauses(self) -> int: ...


class Outlet(Protocol):
    """Where a batch's mails go: the process's SMTP pool (`digest.mail.pool.send_pool`),
    or `OneAtATime` over a transport."""

    @property
    def breaker(self) -> Breaker: ...

    def submit(self, wire: Wire) -> Future[None]: ...


class OneAtATime:
    """A transport as an outlet: each mail sent when it is submitted, on one connection
    and an event loop of its own, judged by a relay breaker of its own as the pool's mails
    are (the commands and tests that hand a transport to a batch)."""

    def __init__(self, transport: Transport, settings: Settings) -> None:
        self.transport = transport
        self.breaker = RelayBreaker(
            settings.relay_failure_limit,
            settings.relay_pause_seconds,
            settings.relay_pause_max_seconds,
        )
        self._loop = asyncio.new_event_loop()

    def submit(self, wire: Wire) -> Future[None]:
        done: Future[None] = Future()
        error = self.breaker.refusal()
        if error is None:
            try:
                self._loop.run_until_complete(self.transport.send_wire(wire))
            except Exception as exc:  # whatever it is, it is this mail's failure
                error = claims.send_failure(exc, self.transport)
            error = self.breaker.record(error)
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
        return done

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self.transport.close())
        finally:
            self._loop.close()


@contextmanager
def outlet_of(sender: Outlet | Transport, settings: Settings) -> Iterator[Outlet]:
    """`sender` as an outlet for one batch: a pool as it is (it lives with the process),
    a transport wrapped, and its connection closed when the batch is done."""
    if hasattr(sender, "submit"):
        yield cast(Outlet, sender)
        return
    outlet = OneAtATime(sender, settings)
    try:
        yield outlet
    finally:
        outlet.close()


M = TypeVar("M")


def hand_over(
    outlet: Outlet,
    mails: Sequence[M],
    build: Callable[[M], Wire],
    answered: Callable[[M, SendError | None], None],
    stop: Callable[[], bool],
    window: int,
) -> list[M]:
    """Hand `mails` to `outlet`, at most `window` in flight, each built just before;
    `answered` hears each mail's outcome (None: accepted), in this thread. Once `stop()`
    says so no more are handed over: those are returned."""
    in_flight: dict[Future[None], M] = {}

    def settle(finished: set[Future[None]]) -> None:
        for future in finished:
            mail = in_flight.pop(future)
            error = future.exception()
            answered(mail, None if error is None else claims.send_failure(error))

    for index, mail in enumerate(mails):
        if stop():
            settle(wait(in_flight).done)
            return list(mails[index:])
        if len(in_flight) >= window:
            settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
        try:
            wire = build(mail)
        except Exception as exc:  # a refused header or a corrupt row fails this mail alone
            answered(mail, claims.build_failure(exc))
            continue
        future = outlet.submit(wire)
        in_flight[future] = mail
        if future.done():
            settle({future})
    settle(wait(in_flight).done)
    return []


class Mail(Protocol):
    """One mail of a batch, claimed and ready to build."""

    @property
    def mail_id(self) -> int: ...
    @property
    def subscriber_id(self) -> int: ...


MailT = TypeVar("MailT", bound=Mail)
MailIn = TypeVar("MailIn", bound=Mail, contravariant=True)


class Batch(Protocol[MailIn]):
    """What one kind of mail (digests, notices) says about its mails, and when its
    claims on them were made or last renewed (`claims.renew`, as it records)."""

    claimed_at: datetime | None

    def build(self, mail: MailIn) -> Wire:
        """The mail on the wire; raises (MessageError ...) when it cannot be made."""
        ...

    def sent(self, mail: MailIn, at: datetime) -> Sent:
        """What its row records once the relay accepted it."""
        ...

    def record(self, session: Session, outcomes: list[Outcome], final: bool) -> Callable[[], None]:
        """Record a batch of outcomes (and, when `final`, close the batch) in `session`;
        what to count once that committed."""
        ...


def send_batch(
    sessions: sessionmaker[Session],
    outlet: Outlet,
    settings: Settings,
    batch: Batch[MailT],
    mails: Sequence[MailT],
) -> None:
    """Hand `mails` to `outlet` (several in flight), judge what the relay says, and record
    the outcomes in batches; mails not handed over while the relay breaker is open go
    back, uncounted, as do those not handed over once the batch's claims, not renewed,
    are getting stale. NotRecorded when the database stayed away at the end."""
    judge = Judge()
    recorder = Recorder(sessions, batch.record, Journal(folder_of(settings)))
    stale = timedelta(seconds=settings.stale_claim_seconds)
    why = "not sent: the relay is paused"

    def stop() -> bool:
        # Claims the batch could not renew (the database away for it) may soon be taken
        # for lost by a worker the database answers: sending on could send them twice.
        nonlocal why
        now = utcnow()
        if claims.expiring(batch.claimed_at, now, stale):
            why = "not sent: its claim could not be renewed"
            return True
        return paused(outlet, now)

    def answered(mail: MailT, error: SendError | None) -> None:
        if error is None:
            judge.sent(batch.sent(mail, utcnow()))
        else:
            judge.failed(mail.mail_id, mail.subscriber_id, error)
        recorder.add(judge.take())

    left = hand_over(
        outlet,
        mails,
        batch.build,
        answered,
        stop=stop,
        window=2 * settings.smtp_connections,
    )
    for mail in left:
        judge.not_sent(mail.mail_id, mail.subscriber_id, why)
    judge.close()
    recorder.add(judge.take())
    if not recorder.finish():
        raise NotRecorded(f"{len(mails)} mail(s)")


@dataclass(slots=True)
class Judge:
    """Turns what the relay said about each mail of a batch into outcomes (see the module
    docstring): refusals of recipients are held until someone is accepted after them."""

    outcomes: list[Outcome] = field(default_factory=list)
    held: list[Outcome] = field(default_factory=list)

    def sent(self, sent: Sent) -> None:
        self._release(None)
        self.outcomes.append(Outcome(sent.mail_id, sent.subscriber_id, Verdict.SENT, sent=sent))

    def failed(self, mail_id: int, subscriber_id: int, failure: SendError) -> None:
        reason = str(failure)
        if failure.recipient and not failure.permanent:
            # The recipient's, if the relay accepts someone after it: a soft bounce.
            self.held.append(Outcome(mail_id, subscriber_id, Verdict.BOUNCED, reason))
        elif failure.relay and failure.code is not None and failure.code >= 500:
            # A 5xx for the transaction (MAIL FROM or DATA): the relay's, or this mail's
            # content's if the relay accepts someone after it (then it fails, as the
            # same content would fail again, but its address is not suppressed).
            self.held.append(Outcome(mail_id, subscriber_id, Verdict.FAILED, reason))
        elif failure.relay:
            # The refusals before it were the start of the relay's trouble.
            self._release(Verdict.RELAY)
            self.outcomes.append(Outcome(mail_id, subscriber_id, Verdict.RELAY, reason))
        elif failure.permanent:
            self.outcomes.append(
                Outcome(mail_id, subscriber_id, Verdict.FAILED, reason, failure.recipient)
            )
        else:
            self.outcomes.append(Outcome(mail_id, subscriber_id, Verdict.RETRY, reason))

    def not_sent(self, mail_id: int, subscriber_id: int, why: str) -> None:
        """A claimed mail not handed over (the relay was paused, or the claim is getting
        stale): back, uncounted, as are the refusals before it."""
        self._release(Verdict.RELAY)
        self.outcomes.append(Outcome(mail_id, subscriber_id, Verdict.RELAY, why))

    def close(self) -> None:
        """The end of the pass: refusals nothing came after, several in a row, may be the
        relay deferring everyone or recipients deferred alone in their pass (DEFERRED:
        uncounted, but given up by age, so that mailboxes that stay full do not come
        back together, uncounted, for ever); a recipient's alone is that mail's own for
        now, a transaction's alone is DEFERRED too."""
        alone = len(self.held) == 1 and self.held[0].verdict == Verdict.BOUNCED
        self._release(Verdict.RETRY if alone else Verdict.DEFERRED)

    def _release(self, verdict: Verdict | None) -> None:
        """The held refusals as `verdict`; None: each as its own (someone was accepted
        after it)."""
        self.outcomes.extend(
            h if verdict is None else replace(h, verdict=verdict) for h in self.held
        )
        self.held.clear()

    def take(self) -> list[Outcome]:
        taken, self.outcomes = self.outcomes, []
        return taken


def resume_at(settings: Settings, outlet: Outlet | None, now: datetime) -> datetime:
    """When to try the relay again after its failure: when the pool's pause ends, or
    after one pause when there is no pool or it is not paused (yet)."""
    paused = outlet.breaker.paused_until if outlet is not None else None
    if paused is not None and paused > now:
        return paused
    return now + timedelta(seconds=settings.relay_pause_seconds)


def paused(outlet: Outlet, now: datetime) -> bool:
    """Whether the outlet's breaker holds sending back (the relay failed too often)."""
    until = outlet.breaker.paused_until
    return until is not None and until > now


def database_away(exc: BaseException) -> bool:
    """Whether a database error is the database being unreachable or busy for now (an
    outcome is then kept and recorded later), rather than a bug."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class Recorder:
    """Outcomes kept until recorded in batches by `record` (one transaction each; what it
    returns is called once that committed, to count them). Each
    mail the relay accepted goes to `journal` first, and the journal is synced before
    each recording. While the database is away the outcomes are kept and tried again,
    with backoff."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        record: Callable[[Session, list[Outcome], bool], Callable[[], None]],
        journal: Journal,
    ) -> None:
        self.sessions = sessions
        self.record = record
        self.journal = journal
        self.waiting: list[Outcome] = []
        self.recordings = 0
        self._last = time.monotonic()
        self._next_try = 0.0
        self._backoff = RECORD_BACKOFF[0]

    def add(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if outcome.sent is not None:
                self.journal.append(outcome.sent)
        self.waiting.extend(outcomes)
        now = time.monotonic()
        due = len(self.waiting) >= RECORD_EVERY or now - self._last >= RECORD_INTERVAL
        if self.waiting and due and now >= self._next_try:
            self.flush(final=False)

    def flush(self, final: bool) -> bool:
        """Record what waits (and, when `final`, close the batch); False if the database
        could not be reached, the outcomes kept."""
        self.journal.sync()
        self._last = time.monotonic()
        try:
            with self.sessions.begin() as session:
                recorded = self.record(session, self.waiting, final)
        except DBAPIError as exc:
            if not database_away(exc):
                raise
            log.warning("cannot record %s outcome(s) now: %s", len(self.waiting), exc.orig)
            self._next_try = self._last + self._backoff
            self._backoff = min(self._backoff * 2, RECORD_BACKOFF[1])
            return False
        recorded()
        self.recordings += 1
        self.waiting = []
        self._backoff = RECORD_BACKOFF[0]
        return True

    def finish(self, patience: float | None = None) -> bool:
        """Record the rest and close the batch, trying for `patience` seconds while the
        database is away; False if it stayed away (the sent outcomes stay in the journal)."""
        deadline = time.monotonic() + (RECORD_PATIENCE if patience is None else patience)
        while True:
            wait_for = self._next_try - time.monotonic()
            if wait_for > 0:
                time.sleep(wait_for)
            if self.flush(final=True):
                self.journal.close(recorded=True)
                return True
            if time.monotonic() + self._backoff > deadline:
                self.journal.close(recorded=False)
                return False
