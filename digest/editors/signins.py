"""Signed-in browsers and failed sign-ins.

A session is a random token in the cookie and its SHA-256 in `editor_sessions`; it ends
when unused for the idle timeout, after its lifetime, on sign-out, and at once when its
editor is disabled or changes password. Failed sign-ins are counted per account and per
client over a window; past the limit, further tries are refused unread until it passes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from digest.core.models import Editor, EditorSession, SignInFailure
from digest.core.settings import Settings
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.base import utcnow

log = logging.getLogger(__name__)

# Touching last_seen_at on every request would write on every page view; once a minute
# is enough for an idle timeout counted in minutes.
TOUCH_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def start_session(session: Session, editor: Editor, now: datetime | None = None) -> str:
    """A new session for `editor`; returns the token for the cookie (stored only hashed)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        EditorSession(
            token_hash=token_hash(token), editor_id=editor.id, created_at=now, last_seen_at=now
        )
    )
    session.flush()
    return token


@dataclass(frozen=True, slots=True)
class Lifetimes:
    idle: timedelta
    total: timedelta

    @classmethod
    def of(cls, settings: Settings) -> Lifetimes:
        return cls(
            timedelta(minutes=settings.editor_idle_minutes),
            timedelta(hours=settings.editor_session_hours),
        )


def editor_of(
    session: Session, token: str, lifetimes: Lifetimes, now: datetime | None = None
) -> Editor | None:
    """The active editor whose live session `token` is, or None (and an ended one is
    deleted). Disabled editors have no session: their rows were deleted when disabled,
    and a row that escaped is refused here too."""
    if not token or len(token) > 100:
        return None
    now = now or utcnow()
    row = session.scalar(select(EditorSession).where(EditorSession.token_hash == token_hash(token)))
    if row is None:
        return None
    editor = session.get(Editor, row.editor_id)
    if (
        editor is None
        or editor.disabled_at is not None
        or now - row.last_seen_at > lifetimes.idle
        or now - row.created_at > lifetimes.total
    ):
        session.delete(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return editor


def end_session(session: Session, token: str) -> None:
    session.execute(delete(EditorSession).where(EditorSession.token_hash == token_hash(token)))


def purge_sessions(session: Session, lifetimes: Lifetimes, now: datetime | None = None) -> int:
    """Delete sessions that can no longer be used (the sweep calls this)."""
    now = now or utcnow()
    result = session.execute(
        delete(EditorSession).where(
            (EditorSession.last_seen_at < now - lifetimes.idle)
            | (EditorSession.created_at < now - lifetimes.total)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


# Failed sign-ins -------------------------------------------------------------------------


def _keys(email: str, client: str) -> tuple[str, str]:
    """What a failure counts against: the account the address names as sign-in reads it
    (normalised, so «ADMIN@ｂufdir.no» counts against admin@bufdir.no), or a hash of an
    address no account can have; and the client."""
    try:
        account = normalise_email(email)
    except InvalidAddress:
        account = "unusable:" + hashlib.sha256(email.encode("utf-8", "replace")).hexdigest()
    return f"account:{account}", f"client:{client[:100]}"


def _most_failures(session: Session, settings: Settings, email: str, client: str) -> int:
    """The failures within the window of this account or of this client, whichever has more."""
    since = utcnow() - timedelta(minutes=settings.sign_in_window_minutes)
    return max(
        session.scalar(
            select(func.count())
            .select_from(SignInFailure)
            .where(SignInFailure.key == key, SignInFailure.at > since)
        )
        or 0
        for key in _keys(email, client)
    )


def throttled(session: Session, settings: Settings, email: str, client: str) -> bool:
    """Has this account or this client used up its tries within the window?"""
    return _most_failures(session, settings, email, client) >= settings.sign_in_attempts


def over_limit(session: Session, settings: Settings, email: str, client: str) -> bool:
    """With this try counted (and committed): is it past the limit? Each try sees at least
    the tries committed before it, so however many come at once, no more than the limit
    of them get their password checked."""
    return _most_failures(session, settings, email, client) > settings.sign_in_attempts


def count_attempt(session: Session, settings: Settings, email: str, client: str) -> list[int]:
    """Count a sign-in as failed before its password is checked: the caller commits this
    first, so tries made in parallel are counted as they come, not after the slow check.
    `forgive` takes it back when the password was right. Older failures are dropped
    here, so the table holds one window's worth at most."""
    now = utcnow()
    session.execute(
        delete(SignInFailure).where(
            SignInFailure.at < now - timedelta(minutes=settings.sign_in_window_minutes)
        )
    )
    rows = [SignInFailure(key=key, at=now) for key in _keys(email, client)]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def forgive(session: Session, attempt: list[int], email: str) -> None:
    """A right password: the attempt was no failure, and the account's count is cleared
    (the client's earlier failures stand)."""
    session.execute(delete(SignInFailure).where(SignInFailure.id.in_(attempt)))
    clear_failures(session, email)


def log_failure(email: str, client: str) -> None:
    # The address as typed (cut, and with anything unprintable shown escaped) and the client.
    log.warning("failed sign-in for %r from %r", email[:254], client)


def record_failure(session: Session, settings: Settings, email: str, client: str) -> None:
    """Count a failed sign-in against the account asked for and the client, and log it."""
    count_attempt(session, settings, email, client)
    log_failure(email, client)


def clear_failures(session: Session, email: str) -> None:
    """A successful sign-in clears the account's count (not the client's)."""
    account, _ = _keys(email, "")
    session.execute(delete(SignInFailure).where(SignInFailure.key == account))
