"""API tokens: made for an editor, shown once, stored as a SHA-256 hash, revocable.

A token is `vv_` and 40 random characters; its first characters are kept in clear so an
editor can tell their tokens apart in a list.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import ApiToken, Editor
from digest.editors.signins import TOUCH_EVERY, token_hash
from subscribers.base import utcnow
from subscribers.text import clean_line

PREFIX = "vv_"


@dataclass(frozen=True, slots=True)
class NewToken:
    token: ApiToken
    secret: str  # shown once, never stored


def make_token(session: Session, editor: Editor, name: str = "") -> NewToken:
    secret = PREFIX + secrets.token_urlsafe(30)
    row = ApiToken(
        editor_id=editor.id,
        name=clean_line(name)[:100],
        token_hash=token_hash(secret),
        prefix=secret[:10],
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return NewToken(row, secret)


def tokens_of(session: Session, editor: Editor) -> Sequence[ApiToken]:
    return session.scalars(
        select(ApiToken).where(ApiToken.editor_id == editor.id).order_by(ApiToken.created_at.desc())
    ).all()


def revoke(session: Session, editor: Editor, token_id: int) -> ApiToken | None:
    """Revoke one of `editor`'s tokens (None if it is not theirs)."""
    row = session.get(ApiToken, token_id)
    if row is None or row.editor_id != editor.id:
        return None
    row.revoked_at = row.revoked_at or utcnow()
    return row


def editor_by_token(session: Session, secret: str) -> Editor | None:
    """The active editor a live token belongs to, or None."""
    if not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(secret)))
    if row is None or row.revoked_at is not None:
        return None
    editor = session.get(Editor, row.editor_id)
    if editor is None or editor.disabled_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        row.last_used_at = now
    return editor
