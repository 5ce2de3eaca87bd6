"""Finding subscribers for the admins' pages: a search by address or name, filters by
status, municipality, role and frequency, a page of rows and the counts that go with it.

The text search is a case-insensitive substring match (ILIKE on PostgreSQL; SQLite's
LIKE folds ASCII letters only, so «Ø» and «ø» differ there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from subscribers.models import Frequency, Status, Subscriber

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class Filters:
    """What a search asks for; empty values ask for everyone."""

    text: str = ""
    status: Status | None = None
    municipality: str = ""  # the four-digit number, as stored
    role: str = ""
    frequency: Frequency | None = None

    def as_dict(self) -> dict[str, str]:
        """The filters set, by name (for the audit log and for links)."""
        values = {
            "q": self.text,
            "status": self.status or "",
            "municipality": self.municipality,
            "role": self.role,
            "frequency": self.frequency or "",
        }
        return {k: str(v) for k, v in values.items() if v}


@dataclass(frozen=True, slots=True)
class Found:
    """One page of matches, how many there are in all, and how they split by status
    (with every filter but the status applied)."""

    rows: Sequence[Subscriber]
    total: int
    page: int
    pages: int
    by_status: dict[Status, int] = field(default_factory=dict)


def _conditions(filters: Filters, *, with_status: bool = True) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.text:
        conditions.append(
            or_(
                Subscriber.email.icontains(filters.text, autoescape=True),
                Subscriber.name.icontains(filters.text, autoescape=True),
            )
        )
    if with_status and filters.status is not None:
        conditions.append(Subscriber.status == filters.status)
    if filters.municipality:
        conditions.append(Subscriber.municipality == filters.municipality)
    if filters.role:
        conditions.append(Subscriber.role == filters.role)
    if filters.frequency is not None:
        conditions.append(Subscriber.frequency == filters.frequency)
    return conditions


def search(session: Session, filters: Filters, page: int = 1, page_size: int = PAGE_SIZE) -> Found:
    """Page `page` (from 1; past the last page gives the last) of the matches, by address."""
    conditions = _conditions(filters)
    total = session.scalar(select(func.count(Subscriber.id)).where(*conditions)) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    rows = session.scalars(
        select(Subscriber)
        .where(*conditions)
        .order_by(Subscriber.email)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    counted = session.execute(
        select(Subscriber.status, func.count(Subscriber.id))
        .where(*_conditions(filters, with_status=False))
        .group_by(Subscriber.status)
    ).all()
    by_status = {status: 0 for status in Status}
    by_status.update({Status(status): count for status, count in counted})
    return Found(rows, total, page, pages, by_status)


def matching(session: Session, filters: Filters) -> Sequence[Subscriber]:
    """Every match, by address (for an export)."""
    return session.scalars(
        select(Subscriber).where(*_conditions(filters)).order_by(Subscriber.email)
    ).all()


def by_key(session: Session, key: str) -> Subscriber | None:
    """The subscriber a page names: by their public ref, or by their id."""
    if not key or len(key) > 40:
        return None
    if key.isascii() and key.isdigit() and len(key) <= 18:  # a bigint, not an overflow
        found = session.get(Subscriber, int(key))
        if found is not None:
            return found
    return session.scalar(select(Subscriber).where(Subscriber.ref == key))
