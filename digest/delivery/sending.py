"""Handing a batch of mails to the relay and recording what it said, for digests and
notices alike; and waiting on the workers. The one module that opens their sessions.

DESIGN.md: no transaction is held across network I/O (on SQLite a long transaction locks
the whole database, and a relay can take minutes). A batch claims and builds its mails in
one short transaction (the batch's own), hands them to the relay with none open (the
process's SMTP pool, several in flight, or one transport, one at a time), and records
the outcomes in batches (`Recorder`: every RECORD_EVERY outcomes or RECORD_INTERVAL
seconds, one transaction), not one commit per mail. A mail the relay accepted is written
to the batch's journal (`outcomes`) before it is recorded, and an outcome that cannot be
recorded (the database is away) is kept and tried again with backoff.

What the relay says is judged here (`Judge`): a refusal of the recipient followed by an
acceptance of someone else is the recipient's (a soft bounce); the same refusal for
everyone from some point on, and any failure of the relay or the connection, is the
relay's, costing the mails nothing (their attempt is not counted); after
`relay_failure_limit` of those in a row, or while the pool's breaker is open, the batch
stops handing mails over and leaves the rest for later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol, TypeVar, cast

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from digest.core.errors import DigestError
from digest.core.settings import Settings
from digest.delivery import claims
from digest.delivery.claims import Outcome, Verdict
from digest.delivery.outcomes import Journal, Sent
from digest.mail.mailer import SendError, Transport

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# What a transport takes.
Outbound = EmailMessage

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
    """The relay as one process sees it (the pool's circuit breaker)."""

    @property
    def paused_until(self) -> datetime | None: ...


class Outlet(Protocol):
    """Where a batch's mails go: the process's SMTP pool, or `OneAtATime` over a transport."""

    @property
    def breaker(self) -> Breaker: ...

    def submit(self, mail: Outbound) -> Future[None]: ...


@dataclass(slots=True)
class NoBreaker:
    paused_until: datetime | None = None


class OneAtATime:
    """A transport as an outlet: each mail sent when it is submitted, on one connection
    and an event loop of its own (the Maildir outbox, and wherever no pool runs)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.breaker = NoBreaker()
        self._loop = asyncio.new_event_loop()

    def submit(self, mail: Outbound) -> Future[None]:
        done: Future[None] = Future()
        try:
            self._loop.run_until_complete(self.transport.send(mail))
        except Exception as exc:  # whatever it is, it is this mail's failure
            done.set_exception(claims.send_failure(exc, self.transport))
        else:
            done.set_result(None)
        return done

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self.transport.close())
        finally:
            self._loop.close()


@contextmanager
def outlet_of(sender: Outlet | Transport) -> Iterator[Outlet]:
    """`sender` as an outlet for one batch: a pool as it is (it lives with the process),
    a transport wrapped, and its connection closed when the batch is done."""
    if hasattr(sender, "submit"):
        yield cast(Outlet, sender)
        return
    outlet = OneAtATime(sender)
    try:
        yield outlet
    finally:
        outlet.close()


M = TypeVar("M")


def hand_over(
    outlet: Outlet,
    mails: Sequence[M],
    build: Callable[[M], Outbound],
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


@dataclass(slots=True)
class Judge:
    """Turns what the relay said about each mail of a batch into outcomes (see the module
    docstring): refusals of recipients are held until someone is accepted after them."""

    failure_limit: int
    outcomes: list[Outcome] = field(default_factory=list)
    held: list[Outcome] = field(default_factory=list)
    relay_in_row: int = 0

    def sent(self, sent: Sent) -> None:
        self.outcomes.extend(
            Outcome(h.mail_id, h.subscriber_id, Verdict.BOUNCED, h.reason) for h in self.held
        )
        self.held.clear()
        self.relay_in_row = 0
        self.outcomes.append(Outcome(sent.mail_id, sent.subscriber_id, Verdict.SENT, sent=sent))

    def failed(self, mail_id: int, subscriber_id: int, failure: SendError) -> None:
        reason = str(failure)
        if failure.recipient and not failure.permanent:
            self.held.append(Outcome(mail_id, subscriber_id, Verdict.RETRY, reason))
            self.relay_in_row += 1
        elif claims.is_relay_failure(failure):
            self.outcomes.append(Outcome(mail_id, subscriber_id, Verdict.RELAY, reason))
            self.relay_in_row += 1
        elif failure.permanent:
            self.outcomes.append(
                Outcome(mail_id, subscriber_id, Verdict.FAILED, reason, failure.recipient)
            )
        else:
            self.outcomes.append(Outcome(mail_id, subscriber_id, Verdict.RETRY, reason))

    @property
    def relay_down(self) -> bool:
        return self.relay_in_row >= self.failure_limit

    def not_sent(self, mail_id: int, subscriber_id: int, why: str) -> None:
        """A claimed mail not handed over (the relay was paused): back, uncounted."""
        self.outcomes.append(Outcome(mail_id, subscriber_id, Verdict.RELAY, why))

    def close(self) -> None:
        """The end of the pass: refusals nobody was accepted after are the relay's when
        there were several in a row (one alone, at the end, is that mail's for now)."""
        verdict = Verdict.RELAY if len(self.held) > 1 else Verdict.RETRY
        self.outcomes.extend(
            Outcome(h.mail_id, h.subscriber_id, verdict, h.reason) for h in self.held
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


def poll_until(
    sessions: sessionmaker[Session],
    done: Callable[[Session], bool],
    timeout: float,
    interval: float = 0.5,
) -> bool:
    """Ask `done` in a fresh transaction every `interval` seconds until it says True
    (then True) or `timeout` seconds have passed (then False)."""
    deadline = time.monotonic() + timeout
    while True:
        with sessions.begin() as session:
            if done(session):
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
