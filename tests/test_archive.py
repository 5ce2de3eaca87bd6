"""The public archive through the app: sent runs listed newest first, a page at a time, by
frequency and topic and searched by title; a run's page as a reader with the address's
topics and role got it; 404s and hostile queries; the embeddable snippet; and never a
subscriber's address or name anywhere."""

from __future__ import annotations

import hashlib
import html
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.archive_links import archive_path
from digest.core.db import session_scope
from digest.core.migrate import upgrade
from digest.core.models import Change, ChangeReview, Item, RoleAudiences, Source
from digest.core.periods import Period, latest_period, schedule_of
from digest.core.settings import Settings, get_settings
from digest.delivery import runs
from digest.delivery.announcements import add_announcement
from digest.delivery.digests import changes_in
from digest.delivery.sendable import sendable_between
from digest.watch.sources import load_sources, sync_topics
from digest.web.app import create_app
from digest.web.archive import pages
from subscribers.choices import choices
from subscribers.models import Frequency
from subscribers.signups import add_subscriber
from tests.support.browser import (  # noqa: F401  (the `browser` fixture)
    launched_browser,
    shoot,
)
from tests.support.mailroom import deliver_chunk
from tests.support.server import LiveServer
from tests.support.smtp import free_port

RUN_AT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
# The subscribers: distinctive, so that finding any part of them in a page is a leak.
PEOPLE = {
    "ola.hemmelig.x7q@kommune-a.no": ("Ola Hemmeligsen", "daily", ["vold"], "krisesenter", "0301"),
    "kari.skjult.q3z@kommune-b.no": ("Kari Løvetann-Skjult", "daily", ["barn"], "", ""),
    "per.ukesen.z9k@kommune-c.no": ("Per Ukesen-Anonym", "weekly", [], "", ""),
}
SECRETS = [
    part
    for email, (name, *_) in PEOPLE.items()
    for part in (email, email.split("@")[0], email.split("@")[1], name, name.split()[-1])
]


@dataclass(frozen=True, slots=True)
class World:
    daily: Period
    weekly: Period
    empty: Period  # a run that sent nothing: every delivery skipped

    @property
    def daily_path(self) -> str:
        return archive_path(Frequency.DAILY, self.daily.start)

    @property
    def weekly_path(self) -> str:
        return archive_path(Frequency.WEEKLY, self.weekly.start)

    @property
    def empty_path(self) -> str:
        return archive_path(Frequency.DAILY, self.empty.start)


def add_source(
    session: Session, key: str, name: str, topics: list[str], audiences: list[str] | None = None
) -> Source:
    source = Source(
        key=key,
        name=name,
        kind="feed",
        url=f"https://{key}.no/f",
        topics=topics,
        audiences=audiences or [],
    )
    session.add(source)
    session.flush()
    return source


def add_change(
    session: Session,
    source: Source,
    title: str,
    at: datetime,
    *,
    kind: str = "new",
    review: ChangeReview = ChangeReview.AUTO,
    reviewed_at: datetime | None = None,
    **fields: object,
) -> Change:
    """A change of a new item of `source`, detected at `at`."""
    url = f"https://{source.key}.no/{hashlib.sha256(title.encode()).hexdigest()[:12]}"
    item = Item(
        source_id=source.id,
        key=url,
        url=url,
        title=title,
        content_hash="h",
        first_seen_at=at,
        last_seen_at=at,
    )
    session.add(item)
    session.flush()
    change = Change(
        item_id=item.id,
        kind=kind,
        detected_at=at,
        title=title,
        url=url,
        review=review,
        reviewed_at=reviewed_at,
        **fields,
    )
    session.add(change)
    session.flush()
    return change


def send(settings: Settings, period: Period) -> int:
    """Start the period's run and deliver it through the test relay; its id."""
    with session_scope(settings.database_url) as session:
        started = runs.start_run(session, period)
    for chunk in started.chunks:
        deliver_chunk(settings, started.run_id, chunk)
    return started.run_id


def build_world(settings: Settings) -> World:
    schedule = schedule_of(settings)
    daily = latest_period(Frequency.DAILY, RUN_AT, schedule)
    weekly = latest_period(Frequency.WEEKLY, RUN_AT, schedule)
    empty = latest_period(Frequency.DAILY, daily.start - timedelta(days=2), schedule)
    assert weekly.end <= daily.start  # each run has its own changes
    hour = timedelta(hours=1)
    with session_scope(settings.database_url) as session:
        rvts = add_source(session, "rvts", "RVTS Øst", ["vold"], ["krisesenter-ansatte"])
        barn = add_source(session, "barn", "Barnesiden", ["barn"], ["barnehage-skole"])
        session.add(RoleAudiences(role="krisesenter", audiences=["krisesenter-ansatte"]))
        add_change(
            session,
            rvts,
            "Ny veileder om vold i nære relasjoner",
            daily.start + hour,
            summary_text="Veilederen samler det kommunene trenger.",
            published_at=daily.start + hour / 2,
        )
        add_change(
            session,
            rvts,
            "Økonomisk vold: endret kapittel",
            daily.start + 2 * hour,
            kind="updated",
            note="Nytt avsnitt om økonomisk kontroll",
            editor_note="Les særlig kapittel 3",
        )
        add_change(session, barn, "Barn som lever med vold", daily.start + 3 * hour)
        add_change(
            session,
            rvts,
            "Godkjent etter en uke",
            daily.start - timedelta(days=7),
            review=ChangeReview.APPROVED,
            reviewed_at=daily.start + 4 * hour,
        )
        add_change(
            session, rvts, "Venter på godkjenning", daily.start + hour, review=ChangeReview.WAITING
        )
        add_change(session, rvts, "Skjult støy", daily.start + hour, review=ChangeReview.HIDDEN)
        add_change(session, rvts, "Ukens nyhet om krisesentre", weekly.start + hour)
        for title, targeting in [
            ("Fagdag om vold", {}),
            ("Kun for krisesentre", {"roles": ["krisesenter"]}),
            ("Bare for Oslo", {"municipalities": ["0301"]}),
        ]:
            add_announcement(
                session,
                title=title,
                body=f"Mer om {title.lower()}.",
                publish_from=daily.start - timedelta(days=1),
                **targeting,  # type: ignore[arg-type]
            )
        for email, (name, frequency, topics, role, place) in PEOPLE.items():
            add_subscriber(
                session,
                email,
                choices(
                    name=name, frequency=frequency, topics=topics, role=role, municipality=place
                ),
                confirmed=True,
            )
    send(settings, empty)
    send(settings, weekly)
    send(settings, daily)
    return World(daily, weekly, empty)


@pytest.fixture
def world(settings: Settings) -> World:
    """The world, built in a thread of its own: mails are sent with asyncio, which cannot
    run in the thread where this module's browser (Playwright) runs its loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(build_world, settings).result()


def text_of(page: str) -> str:
    """The page's text: tags dropped, entities read, blanks collapsed."""
    main = page.split('<main id="innhold">', 1)[-1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", main)).split())


def run_links(page: str) -> list[str]:
    """The addresses of the runs the listing shows, in order."""
    return re.findall(r'<h3><a href="(/arkiv/[^"]+)">', page)


def test_the_listing_shows_sent_runs_newest_first_and_not_an_empty_one(
    client: httpx.Client, world: World
) -> None:
    page = client.get("/arkiv")
    assert page.status_code == 200
    assert run_links(page.text) == [world.daily_path, world.weekly_path]
    text = text_of(page.text)
    assert "Daglig oversikt torsdag 26. november 2026" in text
    assert "Ukentlig oversikt, uke 47 2026" in text
    assert "2 utsendelser" in text
    # What a reader of every topic got: three new articles, one updated, one announcement.
    assert "3 nye artikler, 1 oppdatert artikkel, 1 kunngjøring" in text
    assert client.get(world.empty_path).status_code == 404
    assert page.headers["cache-control"] == "no-store"
    assert '<link rel="alternate" type="application/atom+xml" href="/arkiv/feed.atom"' in page.text


def test_per_frequency_and_per_topic(client: httpx.Client, world: World) -> None:
    assert run_links(client.get("/arkiv/daglig").text) == [world.daily_path]
    assert run_links(client.get("/arkiv/ukentlig").text) == [world.weekly_path]
    assert run_links(client.get("/arkiv?frekvens=ukentlig").text) == [world.weekly_path]
    assert run_links(client.get("/arkiv/fortlopende").text) == []
    barn = client.get("/arkiv?tema=barn")
    # The weekly run had nothing about «barn»; the daily run's link keeps the topic.
    assert run_links(barn.text) == [world.daily_path + "?tema=barn"]
    assert "1 ny artikkel, 1 kunngjøring" in text_of(barn.text)
    assert run_links(client.get("/arkiv/ukentlig?tema=barn").text) == []
    assert run_links(client.get("/arkiv/ukentlig?tema=vold").text) == [
        world.weekly_path + "?tema=vold"
    ]


@pytest.mark.parametrize(
    ("search", "found"),
    [
        ("økonomisk", ["daily"]),  # «Økonomisk …»: case ignored beyond A to Z
        ("ØKONOMISK VOLD", ["daily"]),
        ("KRISESENTRE", ["weekly"]),  # not the daily run's announcement for one role
        ("fagdag", ["daily"]),  # an announcement for everyone
        ("Godkjent etter", ["daily"]),  # approved in the daily run's period
        ("Venter på godkjenning", []),  # waiting: never sent
        ("Skjult", []),  # hidden
        ("Bare for Oslo", []),  # for one municipality: not public
        ("%", []),  # LIKE's own characters are taken literally
        ("_", []),
        ("\x00økonomisk\x1b ", ["daily"]),  # control characters dropped
        ("hemmelig", []),  # subscribers are not searched
    ],
)
def test_search_by_title(client: httpx.Client, world: World, search: str, found: list[str]) -> None:
    paths = {"daily": world.daily_path, "weekly": world.weekly_path}
    page = client.get("/arkiv", params={"q": search})
    assert page.status_code == 200
    assert run_links(page.text) == [paths[f] for f in found]


@pytest.fixture
def pg_client(env: pytest.MonkeyPatch, settings: Settings, pg_url: str):  # type: ignore[no-untyped-def]
    env.setenv("DIGEST_DATABASE_URL", pg_url)
    env.setenv("DIGEST_SECRET_KEY", "a-test-secret-key-long-enough")
    get_settings.cache_clear()
    pg = get_settings()
    upgrade(pg.database_url)
    with session_scope(pg.database_url) as session:
        sync_topics(session, load_sources(pg.sources_file).topics)
    world = build_world(pg)
    server = LiveServer(create_app(pg)).start()
    with server.client() as web:
        yield web, world
    server.stop()


def test_search_and_filters_on_postgresql(pg_client) -> None:  # type: ignore[no-untyped-def]
    client, world = pg_client
    for search in ("økonomisk", "ØKONOMISK", "fagdag"):
        assert run_links(client.get("/arkiv", params={"q": search}).text) == [world.daily_path]
    assert run_links(client.get("/arkiv", params={"q": "100%"}).text) == []
    assert run_links(client.get("/arkiv?tema=barn").text) == [world.daily_path + "?tema=barn"]
    assert client.get(world.daily_path + "?tema=%00&rolle=%00&q=%00").status_code == 200
    assert client.get("/arkiv?q=%00%00").status_code == 200
    assert client.get("/endringer/kilde/%00.atom").status_code == 404


def test_a_runs_page_shows_the_digest_in_the_mails_order(client: httpx.Client, world) -> None:
    page = client.get(world.daily_path)
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Daglig oversikt torsdag 26. november 2026" in text
    # Announcements first (only the one for everyone), then the resources by name, new
    # articles before updated ones.
    order = [
        "Kunngjøringer",
        "Fagdag om vold",
        "Barnesiden",
        "Barn som lever med vold",
        "RVTS Øst",
        "Ny veileder om vold i nære relasjoner",
        "Godkjent etter en uke",
        "Økonomisk vold: endret kapittel",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "Redaksjonens merknad: Les særlig kapittel 3" in text
    assert "Nytt avsnitt om økonomisk kontroll" in text
    assert "Veilederen samler det kommunene trenger." in text
    assert "onsdag 25. november 2026" in text  # the article's date, in Oslo time
    for absent in ("Kun for krisesentre", "Bare for Oslo", "Venter på godkjenning", "Skjult støy"):
        assert absent not in text
    # A role: its announcements, and only the sources made for its audiences.
    narrowed = {"rolle": "krisesenter", "avgrens": "1"}
    role = text_of(client.get(world.daily_path, params=narrowed).text)
    assert "Kun for krisesentre" in role and "Bare for Oslo" not in role
    assert "Ny veileder om vold" in role and "Barn som lever med vold" not in role
    # A role without narrowing: its announcements, and every source, as in its mails.
    role = text_of(client.get(world.daily_path, params={"rolle": "krisesenter"}).text)
    assert "Kun for krisesentre" in role and "Barn som lever med vold" in role
    # A role the sources file maps to no audience is not narrowed.
    school = text_of(client.get(world.daily_path, params={"rolle": "annet"}).text)
    assert "Barn som lever med vold" in school and "Kun for krisesentre" not in school
    barn = text_of(client.get(world.daily_path, params={"tema": "barn"}).text)
    assert "Barn som lever med vold" in barn and "Fagdag om vold" in barn
    assert "RVTS Øst" not in barn and "Ny veileder" not in barn


def test_a_runs_page_in_each_language(client: httpx.Client, world: World) -> None:
    nn = client.get(world.daily_path, params={"lang": "nn"})
    assert '<html lang="nn"' in nn.text
    assert "Dagleg oversikt torsdag 26. november 2026" in text_of(nn.text)
    client.cookies.clear()  # ?lang= was remembered; now the browser's header decides
    en = client.get(world.weekly_path, headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en"' in en.text
    assert "Weekly digest, week 47 2026" in text_of(en.text)
    listing = client.get("/arkiv", params={"lang": "en"})
    assert "Archive of sent digests" in text_of(listing.text)
    assert "3 new articles, 1 updated article, 1 announcement" in text_of(listing.text)


@pytest.mark.parametrize(
    "path",
    [
        "/arkiv/maanedlig",
        "/arkiv/daglig/2026-13-01T0700Z",
        "/arkiv/daglig/i-går",
        "/arkiv/daglig/" + "9" * 5000,
        "/arkiv?side=9",
    ],
)
def test_unknown_addresses_are_404_pages(client: httpx.Client, world: World, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 404
    assert "Fant ikke siden" in page.text and '<a href="/arkiv">' in page.text


def test_a_run_under_another_frequency_is_404(client: httpx.Client, world: World) -> None:
    key = world.daily_path.rsplit("/", 1)[1]
    assert client.get(f"/arkiv/ukentlig/{key}").status_code == 404


@pytest.mark.parametrize(
    ("query", "listing", "run"),
    [
        ({"tema": ["<script>", "vold", "x" * 10_000], "rolle": "\x00admin"}, 200, 200),
        ({"tema": [str(n) for n in range(500)]}, 200, 200),
        ({"lang": "\u202e"}, 200, 200),
        ({"q": "x" * 101}, 400, 200),  # a run's page reads no search
        ({"q": "x" * 5000}, 400, 200),
        ({"side": "abc"}, 400, 200),
        ({"side": "0"}, 400, 200),
        ({"side": "-1"}, 400, 200),
        ({"side": "1e9"}, 400, 200),
    ],
)
def test_hostile_queries_are_ignored_or_refused_clearly(
    client: httpx.Client, world: World, query: dict[str, object], listing: int, run: int
) -> None:
    for path, status in (("/arkiv", listing), (world.daily_path, run)):
        page = client.get(path, params=query)  # type: ignore[arg-type]
        assert page.status_code == status, path
        assert "<script>" not in page.text
        if status == 400:
            assert "Vi forsto ikke søket" in page.text


def test_pagination_is_a_labelled_nav_with_rel_links(
    client: httpx.Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    schedule = schedule_of(settings)
    with session_scope(settings.database_url) as session:
        source = add_source(session, "rvts", "RVTS Øst", ["vold"])
        add_subscriber(session, "side.leser@kommune.no", choices(topics=["vold"]), confirmed=True)
        periods = [
            latest_period(Frequency.DAILY, RUN_AT - timedelta(days=d), schedule) for d in range(5)
        ]
        for n, period in enumerate(periods):
            add_change(session, source, f"Artikkel nummer {n}", period.start + timedelta(hours=1))
    for period in periods:
        send(settings, period)
    first = client.get("/arkiv", params={"tema": "vold"})
    assert run_links(first.text) == [
        archive_path(Frequency.DAILY, p.start) + "?tema=vold" for p in periods[:2]
    ]
    nav = re.search(
        r'<nav aria-label="Sider i arkivet" class="pagination">(.*?)</nav>', first.text, re.S
    )
    assert nav and 'rel="next"' in nav[1] and 'rel="prev"' not in nav[1]
    assert "Side 1 av 3" in nav[1]
    assert '<link rel="next" href="/arkiv?tema=vold&amp;side=2">' in first.text
    second = client.get("/arkiv?tema=vold&side=2")
    assert run_links(second.text) == [
        archive_path(Frequency.DAILY, p.start) + "?tema=vold" for p in periods[2:4]
    ]
    assert 'href="/arkiv?tema=vold" rel="prev"' in second.text
    assert 'href="/arkiv?tema=vold&amp;side=3" rel="next"' in second.text
    third = client.get("/arkiv?tema=vold&side=3")
    assert len(run_links(third.text)) == 1 and 'rel="next"' not in third.text
    assert client.get("/arkiv?tema=vold&side=4").status_code == 404


def test_the_archive_rule_is_deliverys_rule(settings: Settings, world: World) -> None:
    """The SQL the archive asks over many runs finds what delivery loads for one."""
    with session_scope(settings.database_url) as session:
        for period in (world.daily, world.weekly, world.empty):
            loaded = {c.change_id for c in changes_in(session, period)}
            found = set(
                session.scalars(select(Change.id).where(sendable_between(period.start, period.end)))
            )
            assert found == loaded


def test_the_snippet_is_frameable_and_the_fragment_fetchable(
    client: httpx.Client, world: World
) -> None:
    page = client.get("/innebygd/tema/vold")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors *" in policy and "script-src" not in policy
    assert "x-frame-options" not in page.headers
    assert page.headers["cache-control"] == "public, max-age=300"
    assert "<script" not in page.text and page.text.startswith("<!DOCTYPE html>")
    text = text_of(page.text.replace("<main>", '<main id="innhold">'))
    assert text.index("Godkjent etter en uke") < text.index("Økonomisk vold: endret kapittel")
    assert "Barn som lever med vold" not in text and "Venter på godkjenning" not in text
    assert "RVTS Øst" in text
    fragment = client.get("/innebygd/tema/vold", params={"format": "fragment"})
    assert fragment.text.startswith('<ul class="veiledervarsel">')
    assert fragment.text.rstrip().endswith("</ul>")
    assert fragment.headers["access-control-allow-origin"] == "*"
    assert client.get("/innebygd/tema/vold.html").text == fragment.text
    again = client.get("/innebygd/tema/vold", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/innebygd/tema/ukjent").status_code == 404
    english = client.get("/innebygd/tema/barn", params={"lang": "en", "antall": "1"})
    assert '<html lang="en"' in english.text and english.text.count("<li>") == 1
    # Every page but the snippet still refuses to be framed.
    assert client.get("/arkiv").headers["x-frame-options"] == "DENY"


def test_no_subscriber_is_named_anywhere(client: httpx.Client, world: World) -> None:
    paths = [
        "/arkiv",
        "/arkiv/daglig",
        "/arkiv/ukentlig",
        "/arkiv?q=vold",
        world.daily_path,
        world.daily_path + "?rolle=krisesenter&tema=vold&lang=en",
        world.weekly_path + "?lang=nn",
        "/arkiv/feed.atom",
        "/endringer/tema/vold.atom",
        "/endringer/tema/barn.atom",
        "/endringer/kilde/rvts.atom",
        "/innebygd/tema/vold",
        "/innebygd/tema/barn?format=fragment",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        body = html.unescape(response.text).lower()
        leaked = [secret for secret in SECRETS if secret.lower() in body]
        assert leaked == [], (path, leaked)


@pytest.fixture
def foreign_page() -> Iterator[Callable[[str], str]]:
    """Another origin's page (an intranet): `foreign_page(html)` serves `html` there and
    gives its address."""
    body: list[bytes] = [b""]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body[0])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(html_text: str) -> str:
        body[0] = html_text.encode()
        return f"http://localhost:{server.server_address[1]}/intranett"

    yield serve
    server.shutdown()
    thread.join(timeout=10)


def test_the_snippet_shows_in_another_origins_iframe_and_the_pages_do_not(
    live_app: LiveServer, world: World, browser: Browser, foreign_page: Callable[[str], str]
) -> None:
    snippet, archive = f"{live_app.url}/innebygd/tema/vold", f"{live_app.url}/arkiv"
    intranet = foreign_page(
        f'<!DOCTYPE html><html lang="nb"><title>Intranett</title>'
        f'<iframe name="snippet" src="{snippet}" title="Nytt"></iframe>'
        f'<iframe name="archive" src="{archive}" title="Arkiv"></iframe></html>'
    )
    page = browser.new_page()
    page.goto(intranet)
    page.wait_for_load_state("load")
    shown = page.frame(name="snippet")
    assert shown is not None and shown.url == snippet
    assert "Godkjent etter en uke" in shown.locator("a").all_text_contents()
    refused = page.frame(name="archive")
    assert refused is not None
    assert "Arkiv over utsendte oversikter" not in (refused.content() or "")
    page.close()


@pytest.mark.parametrize("language", ["nb", "nn", "en"])
def test_the_archive_pages_have_no_serious_accessibility_faults(
    live_app: LiveServer, world: World, browser: Browser, language: str
) -> None:
    paths = [
        "/arkiv",
        "/arkiv/daglig?q=ingen+treff",
        world.daily_path + "?rolle=krisesenter",
        world.weekly_path,
        "/arkiv/daglig/ukjent",
        "/innebygd/tema/vold",
    ]
    page = browser.new_page()
    for path in paths:
        separator = "&" if "?" in path else "?"
        page.goto(f"{live_app.url}{path}{separator}lang={language}")
        violations = Axe().run(page).response["violations"]
        serious = [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
        assert serious == [], (path, serious)
    page.close()


def test_a_run_with_only_targeted_announcements_is_not_listed_but_its_page_answers(
    client: httpx.Client, settings: Settings
) -> None:
    period = latest_period(Frequency.DAILY, RUN_AT, schedule_of(settings))
    with session_scope(settings.database_url) as session:
        add_announcement(
            session,
            title="Bare for Oslo",
            publish_from=period.start,
            municipalities=["0301"],
        )
        add_subscriber(
            session, "oslo.leser.k4@kommune.no", choices(municipality="0301"), confirmed=True
        )
    with ThreadPoolExecutor(1) as pool:  # see `world`
        pool.submit(send, settings, period).result()
    assert run_links(client.get("/arkiv").text) == []
    page = client.get(archive_path(Frequency.DAILY, period.start))
    assert page.status_code == 200
    text = text_of(page.text)
    assert "bare kunngjøringer for noen mottakere" in text and "Bare for Oslo" not in text


def test_the_archive_pages_fit_a_phone_and_are_photographed(
    live_app: LiveServer, world: World, browser: Browser
) -> None:
    pages_shown = {
        "archive": "/arkiv?tema=vold",
        "archive-run": world.daily_path + "?rolle=krisesenter",
        "archive-snippet": "/innebygd/tema/vold",
    }
    page = browser.new_page(viewport={"width": 320, "height": 640})
    for path in pages_shown.values():
        page.goto(live_app.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, (path, width)
    page.close()
    for name, path in pages_shown.items():
        shoot(browser, live_app.url + path, name)
