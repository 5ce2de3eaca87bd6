"""The state machine of one outbound mail, shared by digest deliveries and notices.

pending -> sending (claimed: claim time set, attempt counted) -> sent, skipped_empty,
skipped_inactive or failed; a temporary failure goes back to pending until the mail's
give-up time. A `sending` claim older than STALE_CLAIM was lost with its worker and is
claimable again, so no state is without a way out. Any exception on the way is turned
into the failure of that one mail (`build_failure`, `send_failure`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from digest.core.models import Delivery, MailStatus, Notice
from digest.mail.mailer import MessageError, SendError, Transport

# A claim held this long was lost with its worker: sending one mail takes seconds.
STALE_CLAIM = timedelta(minutes=10)

Mail = Delivery | Notice
MailTable = type[Delivery] | type[Notice]


def stale_claim(table: MailTable, now: datetime) -> ColumnElement[bool]:
    # A claim without a time is one from before claims were timed: stale too.
    return and_(
        table.status == MailStatus.SENDING,
        or_(table.claimed_at.is_(None), table.claimed_at < now - STALE_CLAIM),
    )


def claimable(table: MailTable, now: datetime) -> ColumnElement[bool]:
    return or_(table.status == MailStatus.PENDING, stale_claim(table, now))


def claim(session: Session, table: MailTable, row_id: int, now: datetime) -> bool:
    """Take one mail for sending (a conditional update, so only one worker wins);
    False when it is finished or another worker holds a fresh claim on it."""
    claimed = session.execute(
        update(table)
        .where(table.id == row_id, claimable(table, now))
        .values(status=MailStatus.SENDING, claimed_at=now, attempts=table.attempts + 1)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def overdue(mail: Mail, now: datetime, give_up_at: datetime) -> bool:
    """Whether a claimed mail that was tried before is past its give-up time (say, its
    last worker died with it every time): it is then failed rather than tried again."""
    return mail.attempts > 1 and now >= give_up_at


def settle(mail: Mail, status: MailStatus, reason: str | None = None) -> None:
    """End a claim with a final status (sent, skipped or failed) and its reason."""
    mail.status = status
    mail.error = reason[:2000] if reason else None


def settle_sent(mail: Mail, now: datetime) -> None:
    settle(mail, MailStatus.SENT)
    mail.sent_at = now


def settle_failure(
    mail: Mail, reason: str, *, permanent: bool, now: datetime, give_up_at: datetime
) -> MailStatus:
    """End a claim after a failed attempt: failed for good when trying again cannot help
    or the give-up time has come, else pending for another try. Returns the status."""
    if permanent:
        settle(mail, MailStatus.FAILED, reason)
    elif now >= give_up_at:
        settle(mail, MailStatus.FAILED, f"gave up after {mail.attempts} attempt(s): {reason}")
    else:
        settle(mail, MailStatus.PENDING, reason)
    return MailStatus(mail.status)


def build_failure(exc: Exception) -> SendError:
    """What an exception while composing, rendering or building one mail means for it:
    a refused header or a corrupt row will fail again, a busy database may not."""
    if isinstance(exc, MessageError):
        return SendError(str(exc), permanent=True)
    return SendError(
        f"could not build the mail: {type(exc).__name__}: {exc}",
        permanent=not isinstance(exc, OperationalError),
    )


def send_failure(exc: Exception, transport: Transport) -> SendError:
    """What an exception while sending one mail means for it: a SendError says; anything
    else is a temporary failure, and the connection is dropped, its state unknown."""
    if isinstance(exc, SendError):
        return exc
    transport.reset()
    return SendError(f"sending failed: {type(exc).__name__}: {exc}", permanent=False)
