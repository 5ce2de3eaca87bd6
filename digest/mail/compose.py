"""Composing a digest (pure): which changes and announcements one subscriber gets for a period."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from digest.core.models import ChangeKind
from digest.core.periods import Period
from digest.core.roles import covers_topics, shares_audience
from subscribers.models import Frequency, Language, Subscriber


@dataclass(frozen=True, slots=True)
class ChangeView:
    """A change joined with what compose needs of its item and source."""

    change_id: int
    item_id: int
    kind: ChangeKind
    detected_at: datetime
    title: str
    url: str
    summary: str
    published_at: datetime | None
    note: str
    source_key: str
    source_name: str
    source_topics: tuple[str, ...]
    # The editors' one-line note, shown with it in digests.
    editor_note: str = ""
    # When it became sendable, if not when detected: an approved change of a source whose
    # changes wait for review goes into the digests whose period includes the approval.
    released_at: datetime | None = None
    # Who its source is written for (the sources file's audience keys).
    source_audiences: tuple[str, ...] = ()

    @property
    def counted_at(self) -> datetime:
        return self.released_at or self.detected_at


@dataclass(frozen=True, slots=True)
class AnnouncementView:
    announcement_id: int
    title: str
    body: str  # Markdown
    link: str | None
    topics: tuple[str, ...]
    publish_from: datetime
    # Targeting beyond topics: each empty means everyone.
    roles: tuple[str, ...] = ()
    municipalities: tuple[str, ...] = ()
    pinned: bool = False  # shown before the others
    # «Send with the next immediate run»: daily and weekly subscribers get it then too.
    send_immediately: bool = False
    # When it came into its window published (the later of its start and its publishing):
    # the immediate run whose period holds this is the one it is sent with.
    went_live: datetime | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    subscriber_id: int
    email: str
    name: str
    frequency: Frequency
    topics: tuple[str, ...]
    language: Language = Language.BOKMAL
    role: str = ""
    municipality: str = ""  # the number, e.g. "0301"
    # The audiences this reader is narrowed to («Bare det som er laget for min rolle»: their
    # role's); empty means everything.
    audiences: tuple[str, ...] = ()

    def wants(self, topics: Iterable[str]) -> bool:
        return covers_topics(self.topics, topics)

    def reads(self, source_audiences: Iterable[str]) -> bool:
        """Is a source written for `source_audiences` for this reader? Yes when they are
        not narrowed; else only if it shares an audience with them (a source that names
        none is made for no role in particular)."""
        return shares_audience(self.audiences, source_audiences)

    def is_targeted_by(self, announcement: AnnouncementView) -> bool:
        """Is this reader among those the announcement is for? Each empty list is everyone;
        a reader who has not told their role or municipality gets only untargeted ones."""
        return (
            self.wants(announcement.topics)
            and (not announcement.roles or self.role in announcement.roles)
            and (
                not announcement.municipalities or self.municipality in announcement.municipalities
            )
        )


def recipient_of(subscriber: Subscriber, audiences: tuple[str, ...] = ()) -> Recipient:
    """What composing needs to know of a subscriber; `audiences`: those they are narrowed
    to (digest.core.roles.audiences_of decides it, from their role and role_only)."""
    return Recipient(
        subscriber.id,
        subscriber.email,
        subscriber.name,
        subscriber.frequency,
        tuple(subscriber.topics or ()),
        subscriber.language,
        subscriber.role or "",
        subscriber.municipality or "",
        audiences,
    )


@dataclass(frozen=True, slots=True)
class DigestItem:
    title: str
    url: str
    summary: str
    is_new: bool
    date: datetime  # published when known, else detected
    note: str
    also_at: tuple[str, ...] = ()  # other sites that published the same news
    editor_note: str = ""  # the editors' one-line note


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


_WORDS = re.compile(r"\w+")


def same_news_key(change: ChangeView) -> str:
    """Changes with the same key are one piece of news: same title, word for word.

    Titles too short to tell news apart («Kurs», «Nyheter») only match themselves.
    """
    words = _WORDS.findall(change.title.casefold())
    if len(words) < 3:
        return f"item:{change.item_id}"
    return "title:" + " ".join(words)


# No zone is more than a day from UTC: a date inside these bounds can be shown in any.
_SHOWABLE_FROM = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_SHOWABLE_UNTIL = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def _shown_date(change: ChangeView) -> datetime:
    """The date an item is shown with: published when that can be shown, else detected.

    A site's «9999-12-31T23:30Z» is year 10000 in Oslo; stored before dates were checked
    on the way in, it must still not stop the mail it is in.
    """
    published = change.published_at
    if published is None or published.utcoffset() is None:
        return change.detected_at
    return published if _SHOWABLE_FROM <= published <= _SHOWABLE_UNTIL else change.detected_at


def compose(
    recipient: Recipient,
    changes: Sequence[ChangeView],
    announcements: Sequence[AnnouncementView],
    period: Period,
) -> Digest:
    """Each article once, in its latest state; new if it first appeared in the period;
    only from the sources this reader reads (their topics, and their role's audiences if
    they are narrowed to it). Every announcement targeted at them comes first, pinned ones
    before the others."""
    latest, new_items = _latest_changes(recipient, changes, period)
    chosen = tuple(
        sorted(
            (a for a in announcements if recipient.is_targeted_by(a)),
            key=lambda a: (not a.pinned, a.publish_from, a.announcement_id),
        )
    )
    return Digest(recipient, period, chosen, _groups(latest, new_items), recipient.topics)


def _latest_changes(
    recipient: Recipient, changes: Sequence[ChangeView], period: Period
) -> tuple[list[ChangeView], set[int]]:
    """The latest change of each item the recipient wants in the period, and which of
    those items first appeared in it."""
    latest: dict[int, ChangeView] = {}
    new_items: set[int] = set()
    for change in changes:
        if (
            not period.contains(change.counted_at)
            or not recipient.wants(change.source_topics)
            or not recipient.reads(change.source_audiences)
        ):
            continue
        if change.kind == ChangeKind.NEW:
            new_items.add(change.item_id)
        current = latest.get(change.item_id)
        if current is None or (change.detected_at, change.change_id) > (
            current.detected_at,
            current.change_id,
        ):
            latest[change.item_id] = change
    return list(latest.values()), new_items


def _groups(latest: list[ChangeView], new_items: set[int]) -> tuple[SourceGroup, ...]:
    """The articles by source, sources by name, new articles first then newest first.

    The same national news reposted by several sites is shown once, under the site whose
    name sorts first, naming the others.
    """
    copies: dict[str, list[ChangeView]] = {}
    for change in sorted(latest, key=lambda c: (c.source_name.casefold(), c.change_id)):
        copies.setdefault(same_news_key(change), []).append(change)
    by_source: dict[str, list[DigestItem]] = {}
    names: dict[str, str] = {}
    for first, *others in copies.values():
        names[first.source_key] = first.source_name
        by_source.setdefault(first.source_key, []).append(_item(first, others, new_items))
    return tuple(
        SourceGroup(
            names[key],
            tuple(sorted(items, key=lambda i: (not i.is_new, -i.date.timestamp(), i.title))),
        )
        for key, items in sorted(by_source.items(), key=lambda kv: names[kv[0]].casefold())
    )


def _item(first: ChangeView, others: list[ChangeView], new_items: set[int]) -> DigestItem:
    """One article as the digest shows it, naming the other sites that carried it."""
    also = tuple(dict.fromkeys(o.source_name for o in others if o.source_key != first.source_key))
    return DigestItem(
        title=first.title,
        url=first.url,
        summary=first.summary,
        is_new=any(c.item_id in new_items for c in (first, *others)),
        date=_shown_date(first),
        note=first.note,
        also_at=also,
        editor_note=first.editor_note,
    )
