"""Sending a batch of mails, and waiting on the workers: the units of work that are several
short transactions by design, and the one module that opens their sessions.

DESIGN.md: no transaction is held across network I/O (on SQLite a long transaction locks
the whole database, and a relay can take minutes). So each mail is claimed in one short
transaction, built in a second, sent with no session open, and its outcome recorded in a
third; what a batch shares is loaded in one transaction before and settled in one after.
A wait looks at the database afresh each time, so it sees the workers' commits. The
sessions come from the factory the caller hands in; what happens inside each transaction
is the batch's (`digests.DigestBatch`, `notices.NoticeBatch`), written as steps on a Session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from digest.delivery import claims
from digest.mail.mailer import SendError, Transport
from subscribers.base import utcnow

Clock = Callable[[], datetime]


class Prepared(Protocol):
    """A mail ready to go: the row it is owed by and the message."""

    @property
    def mail_id(self) -> int: ...
    @property
    def message(self) -> EmailMessage: ...


P = TypeVar("P", bound=Prepared)


class Batch(Protocol[P]):
    """The steps of one kind of mail; each runs in its own short transaction."""

    def begin(self, session: Session, now: datetime) -> Sequence[int]:
        """Load what the batch shares; the ids of the mails to send."""
        ...

    def claim(self, session: Session, mail_id: int, now: datetime) -> bool:
        """Take one mail for sending; False when it is not this worker's to send."""
        ...

    def prepare(self, session: Session, mail_id: int, now: datetime) -> P | None:
        """The message of a claimed mail; None when it was settled without one (skipped)."""
        ...

    def record_sent(self, session: Session, prepared: P, now: datetime) -> None: ...

    def record_failure(
        self, session: Session, mail_id: int, failure: SendError, now: datetime
    ) -> None: ...

    def end(self, session: Session, now: datetime) -> None:
        """Settle what the whole batch tells (after every mail was tried)."""
        ...


def send_batch(
    sessions: sessionmaker[Session],
    transport: Transport,
    batch: Batch[P],
    clock: Clock = utcnow,
) -> None:
    """Send every mail of `batch` over `transport`, then close it; a failure of one mail
    is recorded with that mail and the batch goes on."""
    asyncio.run(_send_batch(sessions, transport, batch, clock))


async def _send_batch(
    sessions: sessionmaker[Session], transport: Transport, batch: Batch[P], clock: Clock
) -> None:
    with sessions.begin() as session:
        mail_ids = list(batch.begin(session, clock()))
    try:
        for mail_id in mail_ids:
            await _send_one(sessions, transport, batch, mail_id, clock)
    finally:
        await transport.close()
    with sessions.begin() as session:
        batch.end(session, clock())


async def _send_one(
    sessions: sessionmaker[Session],
    transport: Transport,
    batch: Batch[P],
    mail_id: int,
    clock: Clock,
) -> None:
    with sessions.begin() as session:
        if not batch.claim(session, mail_id, clock()):
            return
    try:
        with sessions.begin() as session:
            prepared = batch.prepare(session, mail_id, clock())
    except Exception as exc:  # a corrupt row or a bug fails this one mail, with its reason
        _record_failure(sessions, batch, mail_id, claims.build_failure(exc), clock)
        return
    if prepared is None:
        return
    try:
        await transport.send(prepared.message)
    except Exception as exc:  # whatever it is, it is this mail's failure, not the batch's
        _record_failure(sessions, batch, mail_id, claims.send_failure(exc, transport), clock)
        return
    with sessions.begin() as session:
        batch.record_sent(session, prepared, clock())


def _record_failure(
    sessions: sessionmaker[Session],
    batch: Batch[P],
    mail_id: int,
    failure: SendError,
    clock: Clock,
) -> None:
    with sessions.begin() as session:
        batch.record_failure(session, mail_id, failure, clock())


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
