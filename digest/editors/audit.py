"""The audit log: every editor's and admin's action, with who, what, when, before and after.

Entries are kept for the retention period (`purge_audit` in the sweep). Values are
stored as JSON: datetimes as ISO text, enums as their values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest.core.models import AuditEntry, Editor
from subscribers.base import utcnow


def plain(value: object) -> object:
    """`value` as JSON can hold it."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def snapshot(row: object, fields: Sequence[str]) -> dict[str, object]:
    """The named attributes of `row`, as JSON can hold them (for before and after)."""
    return {name: plain(getattr(row, name)) for name in fields}


def record(
    session: Session,
    editor: Editor | None,
    action: str,
    target_type: str,
    target_id: object = "",
    *,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
) -> AuditEntry:
    """Write one entry in the caller's transaction, so it stands or falls with the action.

    `editor` None is the command line (an operator at the shell)."""
    entry = AuditEntry(
        at=utcnow(),
        editor_id=editor.id if editor is not None else None,
        editor_email=editor.email if editor is not None else "(kommandolinjen)",
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:100],
        before=plain(dict(before)) if before is not None else None,
        after=plain(dict(after)) if after is not None else None,
    )
    session.add(entry)
    return entry


def entries(
    session: Session,
    *,
    editor_email: str = "",
    action: str = "",
    target_type: str = "",
    limit: int = 100,
    offset: int = 0,
) -> Sequence[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if editor_email:
        query = query.where(AuditEntry.editor_email == editor_email.strip().lower())
    if action:
        query = query.where(AuditEntry.action == action)
    if target_type:
        query = query.where(AuditEntry.target_type == target_type)
    return session.scalars(query.limit(limit).offset(offset)).all()


def purge_audit(session: Session, before: datetime) -> int:
    """Delete entries older than `before` (the retention period)."""
    result = session.execute(delete(AuditEntry).where(AuditEntry.at < before))
    return int(getattr(result, "rowcount", 0) or 0)
