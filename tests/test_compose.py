"""Compose: each article once in its latest state, by topic, and no empty digest."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from digest.core.models import ChangeKind
from digest.core.periods import Period
from digest.mail.compose import (
    AnnouncementView,
    ChangeView,
    Digest,
    DigestItem,
    Recipient,
    SourceGroup,
    compose,
)
from digest.mail.render import MailLinks, render
from subscribers.models import Frequency

START = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
PERIOD = Period(Frequency.DAILY, START, START + timedelta(days=1))


def change(
    cid: int,
    item: int,
    kind: ChangeKind,
    hours: float,
    title: str,
    topics=("vold",),
    source: str = "rvts",
) -> ChangeView:
    return ChangeView(
        cid,
        item,
        kind,
        START + timedelta(hours=hours),
        title,
        f"https://x.no/{item}",
        "",
        None,
        "",
        source,
        source.upper(),
        tuple(topics),
    )


def recipient(topics=()) -> Recipient:
    return Recipient(1, "kari@kommune.no", "Kari", Frequency.DAILY, tuple(topics))


def test_an_article_changed_several_times_appears_once_in_its_latest_state() -> None:
    changes = [
        change(1, 10, ChangeKind.NEW, 1, "Utkast"),
        change(2, 10, ChangeKind.UPDATED, 3, "Endelig tittel"),
        change(3, 11, ChangeKind.UPDATED, 2, "Revidert kapittel"),
    ]
    digest = compose(recipient(), changes, [], PERIOD)
    items = digest.groups[0].items
    assert [(i.title, i.is_new) for i in items] == [
        ("Endelig tittel", True),
        ("Revidert kapittel", False),
    ]
    assert digest.item_count == 2 and digest.new_count == 1


def test_changes_outside_the_period_are_left_out() -> None:
    changes = [change(1, 10, ChangeKind.NEW, -1, "Før"), change(2, 11, ChangeKind.NEW, 24, "Etter")]
    assert compose(recipient(), changes, [], PERIOD).is_empty


def test_topics_choose_what_a_subscriber_gets() -> None:
    changes = [
        change(1, 10, ChangeKind.NEW, 1, "Om vold"),
        change(2, 11, ChangeKind.NEW, 1, "Om barn", ("barn",)),
    ]
    digest = compose(recipient(["barn"]), changes, [], PERIOD)
    assert [i.title for g in digest.groups for i in g.items] == ["Om barn"]
    everything = compose(recipient(), changes, [], PERIOD)
    assert everything.item_count == 2


def test_groups_are_per_source_sorted_by_name() -> None:
    changes = [
        change(1, 10, ChangeKind.NEW, 1, "A", source="snakke"),
        change(2, 11, ChangeKind.NEW, 1, "B", source="bufdir"),
    ]
    digest = compose(recipient(), changes, [], PERIOD)
    assert [g.name for g in digest.groups] == ["BUFDIR", "SNAKKE"]


def test_announcements_alone_make_a_digest_and_follow_topics() -> None:
    ann = AnnouncementView(1, "Kurs", "Meld deg på", None, ("krisesenter",), START)
    assert compose(recipient(["vold"]), [], [ann], PERIOD).is_empty
    digest = compose(recipient(["krisesenter"]), [], [ann], PERIOD)
    assert not digest.is_empty and digest.announcements == (ann,)


def test_the_same_news_on_several_sites_appears_once_naming_the_others() -> None:
    changes = [
        change(1, 10, ChangeKind.NEW, 1, "SNAKKE lanseres på samisk", source="rvts nord"),
        change(2, 11, ChangeKind.NEW, 2, "SNAKKE lanseres på samisk!", source="rvts midt"),
        change(3, 12, ChangeKind.NEW, 3, "Snakke lanseres på  samisk", source="rvts vest"),
        change(4, 13, ChangeKind.NEW, 1, "Kurs", source="rvts nord"),
        change(5, 14, ChangeKind.NEW, 1, "Kurs", source="rvts midt"),
    ]
    digest = compose(recipient(), changes, [], PERIOD)
    titles = [(g.name, i.title, i.also_at) for g in digest.groups for i in g.items]
    assert ("RVTS MIDT", "SNAKKE lanseres på samisk!", ("RVTS NORD", "RVTS VEST")) in titles
    assert digest.item_count == 3  # the news once, and the two short «Kurs» titles apart


def test_a_date_no_zone_can_show_is_not_the_items_date() -> None:
    """Stored before dates were checked on the way in, or from anywhere else: 9999-12-31
    23:30 UTC is year 10000 in Oslo, and must not stop the mail it is in."""
    absurd = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
    changes = [
        dataclasses.replace(change(1, 10, ChangeKind.NEW, 2, "Langt fram"), published_at=absurd),
        dataclasses.replace(change(2, 11, ChangeKind.NEW, 1, "Helt vanlig"), published_at=START),
    ]
    digest = compose(recipient(), changes, [], PERIOD)
    dates = {item.title: item.date for item in digest.groups[0].items}
    assert dates == {"Langt fram": START + timedelta(hours=2), "Helt vanlig": START}


def test_render_leaves_out_a_date_it_cannot_show() -> None:
    item = DigestItem(
        "Langt fram", "https://x.no/1", "", True, datetime.max.replace(tzinfo=UTC), ""
    )
    digest = Digest(recipient(), PERIOD, groups=(SourceGroup("RVTS", (item,)),))
    links = MailLinks("https://v.no/a", "https://v.no/b")
    mail = render(digest, links, ZoneInfo("Europe/Oslo"), "Veiledervarsel")
    assert "Langt fram" in mail.text and "Langt fram" in mail.html
    assert "9999" not in mail.text and "10000" not in mail.text
