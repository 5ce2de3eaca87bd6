"""Deciding new, updated and unchanged entries (pure), and storing them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Change, Item, Source
from digest.watch.entries import Entry
from digest.watch.ingest import Verdict, decide, ingest

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def entry(key: str, title: str = "Tittel", text: str = "Tekst", days_old: float = 1) -> Entry:
    return Entry(
        key=key,
        url=f"https://x.no/{key}",
        title=title,
        content_text=text,
        published_at=AT - timedelta(days=days_old),
    )


def test_baseline_reports_only_the_backfill_window() -> None:
    decisions = decide(
        [entry("a", days_old=1), entry("b", days_old=30), entry("c", days_old=0)],
        {},
        baseline=True,
        backfill_since=AT - timedelta(days=7),
    )
    assert [d.verdict for d in decisions] == [Verdict.NEW, Verdict.BACK_CATALOGUE, Verdict.NEW]


def test_a_date_in_the_future_does_not_carry_an_item_past_the_baseline() -> None:
    decisions = decide(
        [entry("future", days_old=-60), entry("hours-ahead", days_old=0)],
        {},
        baseline=True,
        backfill_since=AT - timedelta(days=7),
        believed_until=AT + timedelta(days=1),
    )
    assert [d.verdict for d in decisions] == [Verdict.BACK_CATALOGUE, Verdict.NEW]


def test_after_the_baseline_every_unknown_entry_is_new_whatever_its_date() -> None:
    decisions = decide(
        [entry("old", days_old=400)], {}, baseline=False, backfill_since=AT - timedelta(days=7)
    )
    assert decisions[0].verdict is Verdict.NEW


def test_changed_title_or_text_is_an_update_and_same_content_is_nothing() -> None:
    known = {
        "a": entry("a").content_hash,
        "b": entry("b").content_hash,
        "c": entry("c").content_hash,
    }
    decisions = decide(
        [entry("a", title="Ny tittel"), entry("b", text="Ny tekst"), entry("c")],
        known,
        baseline=False,
        backfill_since=AT,
    )
    assert [d.verdict for d in decisions] == [Verdict.UPDATED, Verdict.UPDATED, Verdict.SAME]


def test_duplicate_keys_in_one_feed_count_once() -> None:
    decisions = decide(
        [entry("a"), entry("a", title="Kopi")], {}, baseline=False, backfill_since=AT
    )
    assert len(decisions) == 1


def test_ingest_stores_items_and_changes(settings) -> None:
    with session_scope(settings.database_url) as session:
        source = Source(
            key="s",
            name="S",
            kind="feed",
            url="https://x.no/feed",
            topics=[],
            audiences=[],
            options={},
        )
        session.add(source)
        session.flush()
        first = ingest(session, source, [entry("a"), entry("b", days_old=60)], AT, 7)
        assert (first.new, first.back_catalogue) == (1, 1)
        assert source.baseline_at == AT
        later = AT + timedelta(days=1)
        second = ingest(
            session, source, [entry("a", text="Revidert"), entry("b", days_old=60)], later, 7
        )
        assert (second.updated, second.same) == (1, 1)
        kinds = session.execute(select(Change.kind, Item.key).join(Item)).all()
        assert sorted(kinds) == [("new", "a"), ("updated", "a")]
        item = session.scalar(select(Item).where(Item.key == "a"))
        assert item.last_seen_at == later and item.first_seen_at == AT
