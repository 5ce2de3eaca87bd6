"""The Atom feeds through the app: each parses in feedparser without a bozo flag, gives
back the titles, links and dates of the seeded runs and changes, in the asked language,
answers 304 to a conditional GET and 200 with a new ETag once something changed; and a
site's title full of markup and control characters stays escaped and valid XML."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import feedparser
import httpx
import pytest
from defusedxml import ElementTree
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import Change, Delivery, DigestRun, MailStatus, Source
from digest.core.settings import Settings
from digest.delivery import review
from digest.web.archive.queries import latest_changes
from tests.test_archive import World, add_change, build_world

ATOM = "application/atom+xml; charset=utf-8"


@pytest.fixture
def world(settings: Settings) -> World:
    return build_world(settings)


def parsed(response: httpx.Response) -> feedparser.FeedParserDict:
    assert response.status_code == 200
    assert response.headers["content-type"] == ATOM
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


def moment(struct: object) -> datetime:
    return datetime.fromtimestamp(calendar.timegm(struct), UTC)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path",
    [
        "/arkiv/feed.atom",
        "/arkiv/feed.atom?tema=barn&lang=en",
        "/endringer/tema/vold.atom",
        "/endringer/tema/barn.atom?lang=nn",
        "/endringer/tema/krisesenter.atom",  # a topic no source writes about: no entries
        "/endringer/kilde/rvts.atom",
    ],
)
def test_every_feed_parses_without_bozo(client: httpx.Client, world: World, path: str) -> None:
    response = client.get(path)
    feed = parsed(response)
    assert feed.version == "atom10"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["etag"].startswith('"')  # strong
    assert response.headers["access-control-allow-origin"] == "*"


def test_a_topics_feed_round_trips_its_changes(
    client: httpx.Client, settings: Settings, world: World
) -> None:
    feed = parsed(client.get("/endringer/tema/vold.atom"))
    assert feed.feed.title == "Veiledervarsel: nytt og endret om Vold i nære relasjoner"
    hour = timedelta(hours=1)
    expected = [  # newest first, by when each went out; waiting and hidden ones never
        ("Godkjent etter en uke", world.daily.start + 4 * hour),
        ("Økonomisk vold: endret kapittel", world.daily.start + 2 * hour),
        ("Ny veileder om vold i nære relasjoner", world.daily.start + hour),
        ("Ukens nyhet om krisesentre", world.weekly.start + hour),
    ]
    assert [(e.title, moment(e.updated_parsed)) for e in feed.entries] == expected
    with session_scope(settings.database_url) as session:
        rvts = session.scalars(select(Source).where(Source.key == "rvts")).one()
        changes = {c.title: c for c in latest_changes(session, [rvts.id], 50)}
    for entry in feed.entries:
        change = changes[entry.title]
        assert entry.link == change.url
        assert entry.author == "RVTS Øst"
        assert entry.id.endswith(f":endring/{change.change_id}")
    new = feed.entries[2]
    assert moment(new.published_parsed) == world.daily.start + hour / 2  # the site's date
    assert new.summary == "Veilederen samler det kommunene trenger."
    assert new.tags[0].term == "new" and new.tags[0].label == "Ny"
    updated = feed.entries[1]
    assert updated.summary == (
        "Redaksjonens merknad: Les særlig kapittel 3\n\nNytt avsnitt om økonomisk kontroll"
    )
    english = parsed(client.get("/endringer/tema/vold.atom?lang=en"))
    assert english.feed.title == "Veiledervarsel: new and changed about Vold i nære relasjoner"
    assert english.entries[1].tags[0].label == "Updated"
    assert [e.title for e in english.entries] == [t for t, _ in expected]  # as the sites wrote
    source = parsed(client.get("/endringer/kilde/barn.atom?lang=nn"))
    assert source.feed.title == "Veiledervarsel: nytt og endra hos Barnesiden"
    assert [e.title for e in source.entries] == ["Barn som lever med vold"]


def test_the_archive_feed_round_trips_its_runs(
    client: httpx.Client, settings: Settings, world: World
) -> None:
    feed = parsed(client.get("/arkiv/feed.atom"))
    assert feed.feed.title == "Veiledervarsel: arkiv over utsendte oversikter"
    base = settings.base_url.rstrip("/")
    assert [(e.title, e.link) for e in feed.entries] == [
        ("Daglig oversikt torsdag 26. november 2026", base + world.daily_path),
        ("Ukentlig oversikt, uke 47 2026", base + world.weekly_path),
    ]
    with session_scope(settings.database_url) as session:
        first = dict(
            session.execute(
                select(DigestRun.period_start, func.min(Delivery.sent_at))
                .join(Delivery, Delivery.run_id == DigestRun.id)
                .where(Delivery.status == MailStatus.SENT)
                .group_by(DigestRun.period_start)
            ).all()
        )
    for entry, period in zip(feed.entries, (world.daily, world.weekly), strict=True):
        sent = first[period.start].replace(microsecond=0)
        assert moment(entry.published_parsed) == sent == moment(entry.updated_parsed)
        assert entry.id == base + (world.daily_path if period == world.daily else world.weekly_path)
    barn = parsed(client.get("/arkiv/feed.atom?tema=barn&lang=en"))
    assert barn.feed.title == "Veiledervarsel: archive of sent digests"
    assert [(e.title, e.link) for e in barn.entries] == [
        (
            "Daily digest Thursday 26 November 2026",
            base + world.daily_path + "?tema=barn&lang=en",
        )
    ]


def test_conditional_get_answers_304_and_a_new_change_a_new_etag(
    client: httpx.Client, settings: Settings, world: World
) -> None:
    path = "/endringer/tema/vold.atom"
    first = client.get(path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert modified == "Wed, 25 Nov 2026 11:00:00 GMT"  # «Godkjent etter en uke», approved
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-Modified-Since": modified},
    ):
        again = client.get(path, headers=headers)
        assert again.status_code == 304, headers
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == "public, max-age=300"
    earlier = "Wed, 25 Nov 2026 10:59:59 GMT"
    assert client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match decides when both are sent (RFC 9110).
    both = client.get(path, headers={"If-None-Match": '"old"', "If-Modified-Since": modified})
    assert both.status_code == 200
    assert client.head(path, headers={"If-None-Match": etag}).status_code == 304
    with session_scope(settings.database_url) as session:
        rvts = session.scalars(select(Source).where(Source.key == "rvts")).one()
        add_change(session, rvts, "Enda en ny veileder", world.daily.start + timedelta(hours=5))
    changed = client.get(path, headers={"If-None-Match": etag, "If-Modified-Since": modified})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.headers["last-modified"] == "Wed, 25 Nov 2026 12:00:00 GMT"
    assert parsed(changed).entries[0].title == "Enda en ny veileder"
    # Hiding it changes what the feed shows, and so its ETag, with no newer row; the
    # feed's own <updated> is the hiding's time (an edit is a change of the feed).
    newest = changed.headers["etag"]
    with session_scope(settings.database_url) as session:
        hidden = session.scalars(select(func.max(Change.id))).one()  # «Enda en ny veileder»
        review.hide(session, hidden)
        edited = session.get(Change, hidden).edited_at  # type: ignore[union-attr]
    after = client.get(path, headers={"If-None-Match": newest})
    assert after.status_code == 200 and after.headers["etag"] not in (etag, newest)
    assert "Enda en ny veileder" not in after.text
    assert edited is not None and moment(parsed(after).feed.updated_parsed) == edited.replace(
        microsecond=0
    )


def test_a_hostile_title_stays_escaped_and_valid_xml(
    client: httpx.Client, settings: Settings, world: World
) -> None:
    title = '<script>alert("x")</script> & \x07\x1b\x0b\ufffe<b>Fet</b> ]]> tittel'
    with session_scope(settings.database_url) as session:
        rvts = session.scalars(select(Source).where(Source.key == "rvts")).one()
        add_change(
            session,
            rvts,
            title,
            world.daily.start + timedelta(hours=6),
            summary_text="<img src=x onerror=alert(1)> oppsummering",
        )
    for path in ("/endringer/tema/vold.atom", "/endringer/kilde/rvts.atom"):
        response = client.get(path)
        ElementTree.fromstring(response.content)  # well-formed XML
        assert b"<script>" not in response.content and b"<img" not in response.content
        entry = parsed(response).entries[0]
        assert entry.title == '<script>alert("x")</script> & <b>Fet</b> ]]> tittel'
        assert entry.summary == "<img src=x onerror=alert(1)> oppsummering"
    snippet = client.get("/innebygd/tema/vold", params={"format": "fragment"})
    assert "<script>" not in snippet.text and "&lt;script&gt;" in snippet.text


@pytest.mark.parametrize(
    "path",
    [
        "/endringer/tema/ukjent.atom",
        "/endringer/kilde/ukjent.atom",
        "/endringer/kilde/%00.atom",
        "/endringer/tema/" + "x" * 3000 + ".atom",
    ],
)
def test_an_unknown_topic_or_source_is_404(client: httpx.Client, world: World, path: str) -> None:
    assert client.get(path).status_code == 404
