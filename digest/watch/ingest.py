"""Ingest: deciding which entries are new, updated or the same (pure), and storing the result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Change, ChangeKind, Item, Source
from digest.watch.entries import Entry


class Verdict(StrEnum):
    NEW = "new"
    UPDATED = "updated"
    SAME = "same"
    BACK_CATALOGUE = "back_catalogue"  # first sight during the baseline, too old to report


@dataclass(frozen=True, slots=True)
class Decision:
    entry: Entry
    verdict: Verdict


def decide(
    entries: Iterable[Entry],
    known_hashes: Mapping[str, str],
    *,
    baseline: bool,
    backfill_since: datetime,
) -> list[Decision]:
    """What each entry is, given the content hashes already stored per key.

    During the baseline (a source's first successful collection) only entries published
    since `backfill_since` are new, so adding a source does not flood anyone.
    """
    decisions: list[Decision] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.key in seen:
            continue
        seen.add(entry.key)
        stored = known_hashes.get(entry.key)
        if stored is None:
            recent = entry.published_at is not None and entry.published_at >= backfill_since
            verdict = Verdict.NEW if not baseline or recent else Verdict.BACK_CATALOGUE
        elif stored != entry.content_hash:
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


def ingest(
    session: Session, source: Source, entries: list[Entry], at: datetime, backfill_days: int
) -> IngestReport:
    """Store entries as Items and record Changes detected at `at`."""
    keys = [e.key for e in entries]
    items: dict[str, Item] = {}
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        query = select(Item).where(Item.source_id == source.id, Item.key.in_(batch))
        items.update({item.key: item for item in session.scalars(query)})
    baseline = source.baseline_at is None
    decisions = decide(
        entries,
        {key: item.content_hash for key, item in items.items()},
        baseline=baseline,
        backfill_since=at - timedelta(days=backfill_days),
    )
    report = IngestReport()
    for decision in decisions:
        entry = decision.entry
        item = items.get(entry.key)
        if item is None:
            item = Item(source_id=source.id, key=entry.key, first_seen_at=at)
            session.add(item)
        if decision.verdict is not Verdict.SAME:
            _copy(entry, item)
        item.last_seen_at = at
        if decision.verdict in (Verdict.NEW, Verdict.UPDATED):
            session.flush()  # the item needs its id
            session.add(
                Change(
                    item_id=item.id,
                    kind=ChangeKind.NEW.value
                    if decision.verdict is Verdict.NEW
                    else ChangeKind.UPDATED.value,
                    detected_at=at,
                    title=entry.title,
                    url=entry.url,
                    summary_text=entry.summary_text,
                    published_at=entry.published_at,
                )
            )
        setattr(report, decision.verdict.value, getattr(report, decision.verdict.value) + 1)
    if baseline:
        source.baseline_at = at
    session.flush()
    return report


def _copy(entry: Entry, item: Item) -> None:
    item.url = entry.url
    item.title = entry.title
    item.summary_html = entry.summary_html
    item.summary_text = entry.summary_text
    item.content_hash = entry.content_hash
    item.published_at = entry.published_at
    item.updated_at = entry.updated_at
