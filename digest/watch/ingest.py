"""Ingest: deciding which entries are new, updated or the same (pure), and storing the result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Change, ChangeKind, ChangeReview, Item, Source
from digest.watch.changes import summarise_change
from digest.watch.entries import Entry
from subscribers.text import strip_invisible


class Verdict(StrEnum):
    NEW = "new"
    UPDATED = "updated"
    SAME = "same"
    BACK_CATALOGUE = "back_catalogue"  # first sight during the baseline, too old to report
    FIRST_READ = "first_read"  # a listed item read for the first time, quietly


# How far past the time of collection a publication date is still believed (clocks and
# zones of sites are off by hours at times, not by days).
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Decision:
    entry: Entry
    verdict: Verdict


def decide(
    entries: Iterable[Entry],
    known_hashes: Mapping[str, str | None],
    *,
    baseline: bool,
    backfill_since: datetime,
    silent: Set[str] = frozenset(),
    believed_until: datetime | None = None,
) -> list[Decision]:
    """What each entry is, given the content hashes already stored per key.

    During the baseline (a source's first successful collection) only entries published
    or updated since `backfill_since` are new, so adding a source does not flood anyone;
    a date after `believed_until` (a publication date in the future) does not count as
    recent, or one odd date would carry any old item past the baseline.
    A stored hash of None is an item only listed so far: reading it is an update, or
    silent when its key is in `silent` (a first read on the slow re-read cycle).
    """
    decisions: list[Decision] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.key in seen:
            continue
        seen.add(entry.key)
        if entry.key not in known_hashes:
            when = entry.published_at or entry.updated_at
            recent = (
                when is not None
                and when >= backfill_since
                and (believed_until is None or when <= believed_until)
            )
            verdict = Verdict.NEW if not baseline or recent else Verdict.BACK_CATALOGUE
        elif known_hashes[entry.key] is None:
            verdict = Verdict.FIRST_READ if entry.key in silent else Verdict.UPDATED
        elif known_hashes[entry.key] != entry.content_hash:
            verdict = Verdict.UPDATED
        else:
            verdict = Verdict.SAME
        decisions.append(Decision(entry, verdict))
    return decisions


@dataclass(slots=True)
class IngestReport:
    new: int = 0
    updated: int = 0
    same: int = 0
    back_catalogue: int = 0
    first_read: int = 0


def ingest(
    session: Session,
    source: Source,
    entries: list[Entry],
    at: datetime,
    backfill_days: int,
    silent: Set[str] = frozenset(),
) -> IngestReport:
    """Store entries as Items and record Changes detected at `at`."""
    items = _stored_items(session, source, [e.key for e in entries])
    baseline = source.baseline_at is None
    decisions = decide(
        entries,
        {key: item.content_hash for key, item in items.items()},
        baseline=baseline,
        backfill_since=at - timedelta(days=backfill_days),
        silent=silent,
        believed_until=at + FUTURE_SLACK,
    )
    report = IngestReport()
    reported: list[tuple[Decision, Item, str]] = []
    for decision in decisions:
        item, note = _apply(session, source, decision, items.get(decision.entry.key), at)
        if decision.verdict in (Verdict.NEW, Verdict.UPDATED):
            reported.append((decision, item, note))
        setattr(report, decision.verdict.value, getattr(report, decision.verdict.value) + 1)
    if reported:
        session.flush()  # one round trip gives every new item its id
        # A source that wants review holds its changes back until an editor approves them.
        review = ChangeReview.WAITING if source.review_before_sending else ChangeReview.AUTO
        session.add_all(
            _change(decision, item, note, at, review) for decision, item, note in reported
        )
    if baseline:
        source.baseline_at = at
    return report


def _stored_items(session: Session, source: Source, keys: list[str]) -> dict[str, Item]:
    """The source's items with these keys, asked in batches the database takes."""
    items: dict[str, Item] = {}
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        query = select(Item).where(Item.source_id == source.id, Item.key.in_(batch))
        with session.no_autoflush:  # nothing pending concerns these rows
            items.update({item.key: item for item in session.scalars(query)})
    return items


def _apply(
    session: Session, source: Source, decision: Decision, item: Item | None, at: datetime
) -> tuple[Item, str]:
    """The entry's item, added or brought up to date, and the note on what changed."""
    entry = decision.entry
    note = ""
    if item is None:
        item = Item(source_id=source.id, key=entry.key, first_seen_at=at)
        session.add(item)
    elif decision.verdict is Verdict.UPDATED:
        note = _note(item, entry)  # before the item takes the new text
    if decision.verdict is not Verdict.SAME:
        _copy(entry, item)
    item.last_seen_at = at
    return item, note


def _change(
    decision: Decision, item: Item, note: str, at: datetime, review: ChangeReview
) -> Change:
    new = decision.verdict is Verdict.NEW
    return Change(
        item_id=item.id,
        kind=ChangeKind.NEW if new else ChangeKind.UPDATED,
        detected_at=at,
        title=decision.entry.title,
        url=decision.entry.url,
        summary_text=decision.entry.summary_text,
        published_at=decision.entry.published_at,
        note=note,
        review=review,
    )


def _note(item: Item, entry: Entry) -> str:
    if item.content_hash is None:
        # Only listed before: there is no earlier text to compare with.
        return f"{entry.declared}." if entry.declared else ""
    # What was stored before this was cleaned on the way in may still hold invisible text.
    return strip_invisible(
        summarise_change(
            item.blocks or [],
            entry.blocks,
            old_title=item.title,
            new_title=entry.title,
            old_declared=item.declared or "",
            new_declared=entry.declared,
        )
    )


def _copy(entry: Entry, item: Item) -> None:
    item.url = entry.url
    item.title = entry.title
    item.summary_html = entry.summary_html
    item.summary_text = entry.summary_text
    item.content_hash = entry.content_hash
    item.published_at = entry.published_at
    item.updated_at = entry.updated_at
    item.blocks = [list(block) for block in entry.blocks]
    item.declared = entry.declared[:300]
