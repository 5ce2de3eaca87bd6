"""The state machine of one outbound mail, shared by digest deliveries and notices.

pending -> sending (claimed: claim time set, attempt counted) -> sent, skipped_empty,
skipped_inactive or failed; a temporary failure goes back to pending, not to be tried
before its `retry_at` (exponential backoff with jitter), until its attempts are used up or
its give-up time has come. A failure of the relay is not the mail's: it goes back to
pending with its attempt not counted. A `sending` claim older than the stale-claim time
(`Settings.stale_claim_seconds`) was lost with its worker and is claimable again, so no
state is without a way out. Any exception on the way is turned into the failure of that
one mail (`build_failure`, `send_failure`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlalchemy import ColumnElement, Row, Table, and_, bindparam, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from digest.core.models import Delivery, MailStatus, Notice
from digest.core.settings import Settings
from digest.delivery.outcomes import Sent
from digest.mail.mailer import MessageError, SendError, Transport
from subscribers.base import Base

# A claim held this long was lost with its worker (the settings' default; workers pass
# `Settings.stale_claim_seconds`): sending one mail takes seconds.
STALE_CLAIM = timedelta(seconds=Settings.model_fields["stale_claim_seconds"].default)

Mail = Delivery | Notice
MailTable = type[Delivery] | type[Notice]


def stale_claim(
    table: MailTable, now: datetime, stale: timedelta = STALE_CLAIM
) -> ColumnElement[bool]:
    # A claim without a time is one from before claims were timed: stale too.
    return and_(
        table.status == MailStatus.SENDING,
        or_(table.claimed_at.is_(None), table.claimed_at < now - stale),
    )


def due(table: MailTable, now: datetime) -> ColumnElement[bool]:
    """Pending and past its backoff."""
    return and_(
        table.status == MailStatus.PENDING,
        or_(table.retry_at.is_(None), table.retry_at <= now),
    )


def claimable(
    table: MailTable, now: datetime, stale: timedelta = STALE_CLAIM
) -> ColumnElement[bool]:
    return or_(due(table, now), stale_claim(table, now, stale))


def claim(
    session: Session, table: MailTable, row_id: int, now: datetime, stale: timedelta = STALE_CLAIM
) -> bool:
    """Take one mail for sending (a conditional update, so only one worker wins);
    False when it is finished, backing off, or another worker holds a fresh claim on it."""
    return bool(claim_where(session, table, table.id == row_id, now, stale))


def claim_where(
    session: Session,
    table: MailTable,
    where: ColumnElement[bool],
    now: datetime,
    stale: timedelta = STALE_CLAIM,
    excluded: Collection[int] = (),
) -> Sequence[Row[int, int, int, str | None]]:
    """Take every claimable mail `where` says in one statement (a conditional update, so
    of two workers each mail goes to one); (id, subscriber_id, attempts, error) of each
    taken, attempts counting this one. `excluded`: ids never to take (their sent outcome
    is in a journal, not yet in the database)."""
    condition = and_(where, claimable(table, now, stale))
    if excluded:
        condition = and_(condition, table.id.not_in(sorted(excluded)))
    return session.execute(
        update(table)
        .where(condition)
        .values(status=MailStatus.SENDING, claimed_at=now, attempts=table.attempts + 1)
        .returning(table.id, table.subscriber_id, table.attempts, table.error)
        .execution_options(synchronize_session=False)
    ).all()


def renew(
    session: Session,
    table: MailTable,
    where: ColumnElement[bool],
    claimed_at: datetime | None,
    now: datetime,
    stale: timedelta,
) -> datetime | None:
    """Renew a batch's claims (made at `claimed_at`) on the mails `where` says that it has
    not settled yet, once a quarter of the stale-claim time has gone (a slow or
    rate-limited relay can take longer than that over a batch), so that no other worker
    takes them for lost; the claim time from now on."""
    if claimed_at is None or now - claimed_at < stale / 4:
        return claimed_at
    session.execute(
        update(table)
        .where(where, table.status == MailStatus.SENDING, table.claimed_at == claimed_at)
        .values(claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    return now


def expiring(claimed_at: datetime | None, now: datetime, stale: timedelta) -> bool:
    """Whether a batch's claims, not renewed (the database away), are too old to send on:
    past half the stale-claim time another worker may soon take them for lost."""
    return claimed_at is not None and now - claimed_at >= stale / 2


def dialect_insert(session: Session, model: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """An INSERT as the database in use writes it, for its ON CONFLICT clauses (both
    SQLite and PostgreSQL have them, and RETURNING)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def overdue(attempts: int, now: datetime, give_up_at: datetime) -> bool:
    """Whether a claimed mail that was tried before (its own tries: a relay's failures are
    not counted) is past its give-up time (say, its last worker died with it every time):
    it is then failed rather than tried again."""
    return attempts > 1 and now >= give_up_at


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """How long a mail waits after its `attempts`-th own temporary failure: exponential
    from `retry_backoff_seconds`, capped, with «equal jitter» (half fixed, half random)
    so the mails of one outage do not all come back at the same second."""
    ceiling = min(
        settings.retry_backoff_max_seconds,
        settings.retry_backoff_seconds * 2 ** max(attempts - 1, 0),
    )
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))


def settle(mail: Mail, status: MailStatus, reason: str | None = None) -> None:
    """End a claim with a final status (sent, skipped or failed) and its reason."""
    mail.status = status
    mail.error = clip(reason)


def clip(reason: str | None) -> str | None:
    return reason[:2000] if reason else None


def build_failure(exc: Exception) -> SendError:
    """What an exception while composing, rendering or building one mail means for it:
    a refused header or a corrupt row will fail again, a busy database may not."""
    if isinstance(exc, MessageError):
        return SendError(str(exc), permanent=True)
    return SendError(
        f"could not build the mail: {type(exc).__name__}: {exc}",
        permanent=not isinstance(exc, OperationalError),
    )


def send_failure(exc: BaseException, transport: Transport | None = None) -> SendError:
    """What an exception while sending one mail means for it: a SendError says; anything
    else is a temporary failure, and the connection is dropped, its state unknown."""
    if isinstance(exc, SendError):
        return exc
    if transport is not None:
        transport.reset()
    return SendError(f"sending failed: {type(exc).__name__}: {exc}", permanent=False)


class Verdict(StrEnum):
    """What one attempt at one mail came to."""

    SENT = "sent"
    FAILED = "failed"  # permanently: trying again cannot help
    RETRY = "retry"  # a temporary failure of this mail: counted, retried with backoff
    BOUNCED = "bounced"  # RETRY, and the recipient's (others were accepted after it)
    RELAY = "relay"  # the relay's trouble: not counted, retried when the relay is back
    # Refusals of several recipients that nothing came after: the relay's or theirs,
    # nobody can tell. RELAY, but given up by age, so that it cannot come back for ever.
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One mail's outcome as it is recorded."""

    mail_id: int
    subscriber_id: int
    verdict: Verdict
    reason: str = ""
    permanent_bounce: bool = False  # FAILED by the recipient's address: suppress it
    sent: Sent | None = None


def settle_failures(
    session: Session,
    table: MailTable,
    outcomes: Sequence[Outcome],
    *,
    settings: Settings,
    now: datetime,
    claimed_at: datetime,
    attempts: Callable[[int], int],
    give_up_at: Callable[[int], datetime],
    resume_at: datetime,
) -> list[tuple[Outcome, MailStatus, str]]:
    """End the claims (made at `claimed_at`) of mails that were not sent, in one
    statement: failed for good when trying again cannot help, when its own attempts
    (`attempts(id)`, this one counted) are used up or its give-up time has come; else
    pending, not to be tried before a backoff (its own failure) or `resume_at` (the
    relay's, or deferred until its give-up time: the attempt is then not counted). A
    claim no longer this batch's (gone stale and taken by another worker) is left alone.
    Each outcome with its status and reason."""
    settled: list[tuple[Outcome, MailStatus, str]] = []
    rows: list[dict[str, object]] = []
    for outcome in outcomes:
        status, reason, retry_at, uncount = MailStatus.FAILED, outcome.reason, None, 0
        tries = attempts(outcome.mail_id)
        if outcome.verdict == Verdict.RELAY or (
            outcome.verdict == Verdict.DEFERRED and now < give_up_at(outcome.mail_id)
        ):
            status, retry_at, uncount = MailStatus.PENDING, resume_at, 1
        elif outcome.verdict == Verdict.DEFERRED:
            reason = f"gave up when the next period's digest went out: {outcome.reason}"
        elif outcome.verdict in (Verdict.RETRY, Verdict.BOUNCED):
            if tries >= settings.send_attempts or now >= give_up_at(outcome.mail_id):
                reason = f"gave up after {tries} attempt(s): {outcome.reason}"
            else:
                status, retry_at = MailStatus.PENDING, now + retry_delay(settings, tries)
        settled.append((outcome, status, reason))
        rows.append(
            {
                "b_id": outcome.mail_id,
                "b_claimed": claimed_at,
                "b_status": status,
                "b_error": clip(reason),
                "b_retry_at": retry_at,
                "b_uncount": uncount,
            }
        )
    if rows:
        sql_table = cast(Table, table.__table__)
        columns = sql_table.c
        session.execute(
            update(sql_table)
            .where(
                columns.id == bindparam("b_id"),
                columns.status == MailStatus.SENDING,
                columns.claimed_at == bindparam("b_claimed"),
            )
            .values(
                status=bindparam("b_status"),
                error=bindparam("b_error"),
                retry_at=bindparam("b_retry_at"),
                attempts=columns.attempts - bindparam("b_uncount"),
            ),
            rows,
        )
    return settled
