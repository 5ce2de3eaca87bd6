"""Composing a digest (pure): which changes and announcements one subscriber gets for a period."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from digest.periods import Period


@dataclass(frozen=True, slots=True)
class ChangeView:
    """A change joined with what compose needs of its item and source."""

    change_id: int
    item_id: int
    kind: str  # "new" or "updated"
    detected_at: datetime
    title: str
    url: str
    summary: str
    published_at: datetime | None
    note: str
    source_key: str
    source_name: str
    source_topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AnnouncementView:
    announcement_id: int
    title: str
    body: str  # Markdown
    link: str | None
    topics: tuple[str, ...]
    publish_from: datetime


@dataclass(frozen=True, slots=True)
class Recipient:
    subscriber_id: int
    email: str
    name: str
    frequency: str
    topics: tuple[str, ...]

    def wants(self, topics: Iterable[str]) -> bool:
        topics = set(topics)
        return not self.topics or not topics or bool(set(self.topics) & topics)


@dataclass(frozen=True, slots=True)
class DigestItem:
    title: str
    url: str
    summary: str
    is_new: bool
    date: datetime  # published when known, else detected
    note: str


@dataclass(frozen=True, slots=True)
class SourceGroup:
    name: str
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class Digest:
    recipient: Recipient
    period: Period
    announcements: tuple[AnnouncementView, ...] = ()
    groups: tuple[SourceGroup, ...] = ()
    topics: tuple[str, ...] = field(default=())

    @property
    def item_count(self) -> int:
        return sum(len(g.items) for g in self.groups)

    @property
    def new_count(self) -> int:
        return sum(1 for g in self.groups for i in g.items if i.is_new)

    @property
    def is_empty(self) -> bool:
        return not self.groups and not self.announcements


def compose(
    recipient: Recipient,
    changes: Sequence[ChangeView],
    announcements: Sequence[AnnouncementView],
    period: Period,
) -> Digest:
    """Each article once, in its latest state; new if it first appeared in the period."""
    latest: dict[int, ChangeView] = {}
    new_items: set[int] = set()
    for change in changes:
        if not period.contains(change.detected_at) or not recipient.wants(change.source_topics):
            continue
        if change.kind == "new":
            new_items.add(change.item_id)
        current = latest.get(change.item_id)
        if current is None or (change.detected_at, change.change_id) > (
            current.detected_at,
            current.change_id,
        ):
            latest[change.item_id] = change
    by_source: dict[str, list[DigestItem]] = {}
    names: dict[str, str] = {}
    for change in latest.values():
        names[change.source_key] = change.source_name
        by_source.setdefault(change.source_key, []).append(
            DigestItem(
                title=change.title,
                url=change.url,
                summary=change.summary,
                is_new=change.item_id in new_items,
                date=change.published_at or change.detected_at,
                note=change.note,
            )
        )
    groups = tuple(
        SourceGroup(
            names[key],
            tuple(sorted(items, key=lambda i: (not i.is_new, -i.date.timestamp(), i.title))),
        )
        for key, items in sorted(by_source.items(), key=lambda kv: names[kv[0]].casefold())
    )
    chosen = tuple(
        sorted(
            (a for a in announcements if recipient.wants(a.topics)),
            key=lambda a: (a.publish_from, a.announcement_id),
        )
    )
    return Digest(recipient, period, chosen, groups, recipient.topics)
