"""Editor accounts: adding, listing, disabling, passwords (argon2), and checking a sign-in.

A wrong password and an unknown account give the same error, after the same work: an
unknown account is checked against a dummy hash, so timing does not tell them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from digest.core.errors import DigestError
from digest.core.models import ApiToken, Editor, EditorRole, EditorSession
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.base import utcnow
from subscribers.text import clean_line

MIN_PASSWORD = 12
MAX_PASSWORD = 1_000  # argon2 takes any length; a megabyte of «password» is an attack

# argon2-cffi's defaults: argon2id, 64 MiB, 3 passes, 4 lanes (RFC 9106's second profile).
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anyone has")


class AccountError(DigestError):
    """An account that cannot be made or changed as asked; `field` names the culprit."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class SignInRefused(DigestError):
    """Wrong address or password, or a disabled account: one answer for all three."""


def checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must be at most {MAX_PASSWORD} characters", "password")
    return password


def _address(email: str) -> str:
    try:
        return normalise_email(email)
    except InvalidAddress as exc:
        raise AccountError(f"not a usable e-mail address: {exc.reason}", "email") from exc


def find(session: Session, email: str) -> Editor | None:
    try:
        address = normalise_email(email)
    except InvalidAddress:
        return None
    return session.scalar(select(Editor).where(Editor.email == address))


def get(session: Session, email: str) -> Editor:
    editor = find(session, email)
    if editor is None:
        raise AccountError(f"no editor with the address {email!r}", "email")
    return editor


def add_editor(
    session: Session, email: str, password: str, role: EditorRole, name: str = ""
) -> Editor:
    address = _address(email)
    if find(session, address) is not None:
        raise AccountError(f"an editor with the address {address} exists already", "email")
    now = utcnow()
    editor = Editor(
        email=address,
        name=clean_line(name)[:200],
        role=role,
        password_hash=_hasher.hash(checked_password(password)),
        created_at=now,
        password_changed_at=now,
    )
    session.add(editor)
    session.flush()
    return editor


def list_editors(session: Session) -> Sequence[Editor]:
    return session.scalars(select(Editor).order_by(Editor.email)).all()


def set_password(session: Session, editor: Editor, password: str) -> None:
    """A new password; every session of the account ends (tokens are kept)."""
    editor.password_hash = _hasher.hash(checked_password(password))
    editor.password_changed_at = utcnow()
    session.execute(delete(EditorSession).where(EditorSession.editor_id == editor.id))


def set_role(editor: Editor, role: EditorRole) -> None:
    editor.role = role


def disable(session: Session, editor: Editor, at: datetime | None = None) -> None:
    """Disable at once: sessions are deleted and API tokens revoked in the same commit."""
    now = at or utcnow()
    editor.disabled_at = editor.disabled_at or now
    session.execute(delete(EditorSession).where(EditorSession.editor_id == editor.id))
    session.execute(
        update(ApiToken)
        .where(ApiToken.editor_id == editor.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def enable(editor: Editor) -> None:
    editor.disabled_at = None


def verify(session: Session, email: str, password: str) -> Editor:
    """The active editor with this address and password, or `SignInRefused`."""
    editor = find(session, email) if len(password) <= MAX_PASSWORD else None
    stored = editor.password_hash if editor is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        raise SignInRefused("wrong address or password") from None
    if editor is None or editor.disabled_at is not None:
        raise SignInRefused("wrong address or password")
    if _hasher.check_needs_rehash(editor.password_hash):
        editor.password_hash = _hasher.hash(password)
    editor.last_sign_in_at = utcnow()
    return editor
