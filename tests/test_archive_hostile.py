"""The archive, its feeds and the snippet against what an attacker found on the running
service: a Last-Modified that stood still while an editor changed what is shown, a
language read from the last `lang` rather than the first valid one, control and bidi
characters and `javascript:` links from stored rows, an unframeable and untranslated
snippet 404, snippet dates without a year, and forms and links that dropped `lang`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import feedparser
import httpx
import pytest
from sqlalchemy import select
from starlette.datastructures import Headers

from digest.core.archive_links import archive_path
from digest.core.db import session_scope
from digest.core.models import Announcement, Change, DigestRun, Source
from digest.core.settings import Settings
from digest.delivery import review
from digest.watch.urls import BadLink, canonical_url
from digest.web.archive.conditional import cached_response, http_date
from digest.web.archive.text import shown_text
from tests.test_archive import World, add_change, build_world

FEED, SNIPPET = "/endringer/tema/vold.atom", "/innebygd/tema/vold"
# What no HTML page of ours may carry raw: C0 controls but tab and newline, DEL, C1,
# noncharacters, and explicit bidi embeddings, overrides and isolates.
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\u202a-\u202e\u2066-\u2069]"
)
HOSTILE = "Tittel\x00 med\x01 \ufffe\u202eesrever\x0b slutt"


@pytest.fixture
def world(settings: Settings) -> World:
    return build_world(settings)


def _change_id(settings: Settings, title: str) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalars(select(Change.id).where(Change.title == title)).one()


def _settle(settings: Settings, number: int) -> None:
    """The change's last edit a minute earlier, as if made before this second: an edit
    in the current second gives no Last-Modified (see the test below)."""
    with session_scope(settings.database_url) as session:
        change = session.get(Change, number)
        assert change is not None and change.edited_at is not None
        change.edited_at -= timedelta(minutes=1)


def test_a_time_in_the_current_second_is_no_last_modified() -> None:
    now = datetime.now(UTC)
    fresh = cached_response(Headers({"if-modified-since": http_date(now)}), b"x", "text/plain", now)
    assert fresh.status_code == 200 and "last-modified" not in fresh.headers
    earlier = now - timedelta(seconds=1)
    since = Headers({"if-modified-since": http_date(earlier)})
    settled = cached_response(since, b"x", "text/plain", earlier)
    assert settled.status_code == 304 and settled.headers["last-modified"] == http_date(earlier)


def _edits() -> list[tuple[str, object]]:
    return [
        ("title", lambda s, i: review.correct_title(s, i, "Rettet tittel")),
        ("note", lambda s, i: review.set_note(s, i, "Ny merknad fra redaksjonen")),
        ("hide", lambda s, i: review.hide(s, i)),
    ]


@pytest.mark.parametrize("path", [FEED, SNIPPET, SNIPPET + ".html"])
@pytest.mark.parametrize(("name", "edit"), _edits())
def test_last_modified_moves_when_an_editor_changes_what_is_shown(
    client: httpx.Client, settings: Settings, world: World, path: str, name: str, edit: object
) -> None:
    first = client.get(path)
    modified = first.headers["last-modified"]
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    number = _change_id(settings, "Ny veileder om vold i nære relasjoner")
    with session_scope(settings.database_url) as session:
        assert edit(session, number) is not None  # type: ignore[operator]
    after = client.get(path, headers={"If-Modified-Since": modified})
    assert after.status_code == 200, name
    if name != "note" or path == FEED:  # the snippet shows no editor's note
        assert after.content != first.content
    _settle(settings, number)
    after = client.get(path, headers={"If-Modified-Since": modified})
    later = after.headers["last-modified"]
    assert parsedate_to_datetime(later) > parsedate_to_datetime(modified)
    assert client.get(path, headers={"If-Modified-Since": later}).status_code == 304


def test_showing_a_hidden_change_again_moves_last_modified(
    client: httpx.Client, settings: Settings, world: World
) -> None:
    number = _change_id(settings, "Ny veileder om vold i nære relasjoner")
    with session_scope(settings.database_url) as session:
        review.hide(session, number)
    _settle(settings, number)
    modified = client.get(FEED).headers["last-modified"]
    with session_scope(settings.database_url) as session:
        assert review.unhide(session, number) is not None
    assert client.get(FEED, headers={"If-Modified-Since": modified}).status_code == 200


@pytest.mark.parametrize("path", ["/arkiv/feed.atom?tema=vold", "/arkiv/feed.atom"])
def test_the_archive_feeds_last_modified_moves_when_an_editor_hides_a_change(
    client: httpx.Client, settings: Settings, world: World, path: str
) -> None:
    with session_scope(settings.database_url) as session:  # the world made an hour ago
        for announcement in session.scalars(select(Announcement)):
            if announcement.updated_at is not None:
                announcement.updated_at -= timedelta(hours=1)
        for run in session.scalars(select(DigestRun)):
            run.first_sent_at = run.first_sent_at and run.first_sent_at - timedelta(hours=1)
        for change in session.scalars(select(Change)):
            change.edited_at = change.edited_at and change.edited_at - timedelta(hours=1)
            change.reviewed_at = change.reviewed_at and change.reviewed_at - timedelta(hours=1)
    modified = client.get(path).headers["last-modified"]
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    with session_scope(settings.database_url) as session:
        hidden = [
            _change_id(settings, title)
            for title in (
                "Ny veileder om vold i nære relasjoner",
                "Økonomisk vold: endret kapittel",
            )
        ]
        for number in hidden:
            assert review.hide(session, number) is not None
    for number in hidden:
        _settle(settings, number)  # past the current second, so Last-Modified is sent
    answer = client.get(path, headers={"If-Modified-Since": modified})
    assert answer.status_code == 200
    assert parsedate_to_datetime(answer.headers["last-modified"]) > parsedate_to_datetime(modified)


@pytest.mark.parametrize("path", [FEED, SNIPPET, "/arkiv/feed.atom"])
def test_a_future_if_modified_since_is_ignored(
    client: httpx.Client, world: World, path: str
) -> None:
    future = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert client.get(path, headers={"If-Modified-Since": future}).status_code == 200


@pytest.mark.parametrize(
    ("query", "language"),
    [
        ("lang=en&lang=nn", "en"),
        ("lang=xx&lang=nn", "nn"),
        ("lang=nn&lang=en&lang=nb", "nn"),
        ("lang=xx", "nb"),
        ("", "nb"),
    ],
)
def test_feeds_and_snippet_take_the_first_valid_lang(
    client: httpx.Client, world: World, query: str, language: str
) -> None:
    feed = feedparser.parse(client.get(f"{FEED}?{query}").content)
    assert feed.feed.language == language
    snippet = client.get(f"{SNIPPET}?{query}")
    assert f'<html lang="{language}"' in snippet.text
    archive = feedparser.parse(client.get(f"/arkiv/feed.atom?{query}").content)
    links = [e.link for e in archive.entries] + re.findall(
        r'href="([^"]+/arkiv[^"]*)"', snippet.text
    )
    assert links
    asked = language if query and query != "lang=xx" else ""
    for link in links:
        assert (f"lang={asked}" in link) if asked else ("lang=" not in link), link


def _hostile_world(settings: Settings, world: World, url: str = "") -> None:
    with session_scope(settings.database_url) as session:
        rvts = session.scalars(select(Source).where(Source.key == "rvts")).one()
        rvts.name = "RVTS\x07 \u202eØst"
        change = add_change(
            session,
            rvts,
            HOSTILE,
            world.daily.start + timedelta(hours=6),
            summary_text="Sammendrag\x00\x1b med \u2066isolat",
            note="Merknad\x08 \ufffe",
            editor_note="Redaksjonen\x0c \u202dsier",
        )
        if url:
            change.url = url


def _run_page(client: httpx.Client, world: World) -> str:
    response = client.get(archive_path(world.daily.frequency, world.daily.start))
    assert response.status_code == 200
    return response.text


def test_control_and_bidi_characters_never_reach_the_html(
    client: httpx.Client, settings: Settings, world: World
) -> None:
    _hostile_world(settings, world)
    clean = "Tittel med esrever slutt"
    for page in (
        client.get(SNIPPET).text,
        client.get(SNIPPET, params={"format": "fragment"}).text,
        _run_page(client, world),
    ):
        assert not FORBIDDEN.search(page), FORBIDDEN.findall(page)
        assert clean in page
        # Each site's title is isolated from the text around it.
        assert re.search(r"<bdi>[^<]*" + clean, page) or f'dir="auto">{clean}' in page
    assert shown_text(HOSTILE) == clean


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JavaScript://host/%0Aalert(1)", "data:text/html,x", " vbscript:x"],
)
def test_only_http_links_are_rendered_as_links(
    client: httpx.Client, settings: Settings, world: World, url: str
) -> None:
    _hostile_world(settings, world, url)
    scheme = url.strip().split(":")[0].lower()
    pages = {
        "fragment": client.get(SNIPPET, params={"format": "fragment"}).text,
        "run": _run_page(client, world),
        "feed": client.get(FEED).text,
        "source feed": client.get("/endringer/kilde/rvts.atom").text,
    }
    for name, page in pages.items():
        assert f"{scheme}:" not in page.lower(), name
        assert "Tittel med esrever slutt" in page, name
    assert feedparser.parse(pages["source feed"]).feed.title.endswith("hos RVTS Øst")
    feed = feedparser.parse(pages["feed"])
    entry = next(e for e in feed.entries if e.title == "Tittel med esrever slutt")
    assert not entry.get("links")
    assert not feed.bozo


def test_the_snippets_404_is_frameable_and_translated(client: httpx.Client, world: World) -> None:
    for path in ("/innebygd/tema/ukjent", "/innebygd/tema/ukjent.html"):
        response = client.get(path, params={"lang": "en"})
        assert response.status_code == 404
        assert "frame-ancestors *" in response.headers["content-security-policy"]
        assert "x-frame-options" not in response.headers
        assert "topic" in response.text.lower() and "temaet" not in response.text
    bokmal = client.get("/innebygd/tema/ukjent")
    assert bokmal.status_code == 404 and "Fant ikke dette temaet." in bokmal.text
    assert "<!DOCTYPE html>" in bokmal.text and '<html lang="nb"' in bokmal.text


def test_snippet_dates_show_the_year(client: httpx.Client, world: World) -> None:
    year = str(world.daily.start.year)
    for language in ("nb", "nn", "en"):
        fragment = client.get(SNIPPET, params={"format": "fragment", "lang": language}).text
        shown = re.findall(r"<time [^>]*>([^<]+)</time>", fragment)
        assert shown and all(year in s for s in shown), (language, shown)


def _hidden_lang(page: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="lang" value="([a-z]+)">', page)


def test_forms_and_links_keep_an_asked_language_without_cookies(
    client: httpx.Client, world: World
) -> None:
    client.cookies.clear()
    listing = client.get("/arkiv", params={"lang": "en"}).text
    assert _hidden_lang(listing) == ["en"]
    for slug in ("fortlopende", "daglig", "ukentlig"):
        assert f'href="/arkiv/{slug}?lang=en"' in listing
    assert 'href="/arkiv?lang=en"' in listing
    feeds = re.findall(r'href="([^"]*\.atom[^"]*)"', listing)
    assert feeds and all("lang=en" in f for f in feeds), feeds
    # The search the form sends, with no cookie: still English.
    client.cookies.clear()
    searched = client.get("/arkiv", params={"q": "vold", "tema": "", "lang": "en"})
    assert '<html lang="en"' in searched.text
    client.cookies.clear()
    run = _run_page(client, world)
    assert _hidden_lang(run) == []
    client.cookies.clear()
    path = archive_path(world.daily.frequency, world.daily.start)
    run_en = client.get(path, params={"lang": "nn"}).text
    assert _hidden_lang(run_en) == ["nn"]
    # Not asked: nothing added.
    client.cookies.clear()
    plain = client.get("/arkiv").text
    assert _hidden_lang(plain) == [] and "lang=" not in "".join(
        re.findall(r'href="(/arkiv/(?:fortlopende|daglig|ukentlig)[^"]*)"', plain)
    )


@pytest.mark.parametrize(
    "url",
    [
        "javascript://host/%0Aalert(1)",
        "JAVASCRIPT://example.org/x",
        "ftp://example.org/fil",
        "file://example.org/etc/passwd",
        "data://example.org/x",
    ],
)
def test_canonical_url_refuses_any_scheme_but_http_and_https(url: str) -> None:
    with pytest.raises(BadLink, match="scheme"):
        canonical_url(url)


def test_canonical_url_keeps_http_and_https() -> None:
    assert canonical_url("HTTPS://Example.org/a#b") == "https://example.org/a"
    assert canonical_url("http://example.org") == "http://example.org/"
