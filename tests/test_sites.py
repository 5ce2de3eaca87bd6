"""Fixture sites modelled on the real ones, each in a before and an after state: collect,
switch, collect again, and check exactly which items are new or updated and what the
change summaries say.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Change, Item, Source
from digest.core.settings import Settings
from digest.watch.article import read_article
from tests.support.collecting import collect_once, watch
from tests.support.site import FixtureSite, Route

SITES = Path(__file__).parent / "fixtures" / "sites"
T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
T1 = datetime(2025, 2, 2, 10, 0, tzinfo=UTC)

SOURCES = """
[topics]
vold = "Vold"

[[source]]
key = "guide"
name = "Krisesenterveileder"
kind = "sections"
url = "{base}/fagstotte/krisesenterveileder"
topics = ["vold"]

[[source]]
key = "vest"
name = "RVTS Vest"
kind = "feed"
url = "{base}/vest/feed/"
topics = ["vold"]
language = "nn"

[[source]]
key = "sor"
name = "RVTS Sør"
kind = "index"
url = "{base}/aktuelt/"
topics = ["vold"]
options = {{ link_pattern = "/aktuelt/\\\\d+/", recheck_hours = 1 }}

[[source]]
key = "sitemap"
name = "Fagstøtte"
kind = "sitemap"
url = "{base}/sitemap.xml"
topics = ["vold"]
options = {{ include = ["/fagstotte/"] }}
"""


def serve(site: FixtureSite, state: str, lastmod: bool = True) -> None:
    def text(name: str) -> bytes:
        body = (SITES / name).read_text(encoding="utf-8").replace("{base}", site.base_url)
        if name.startswith("sitemap") and not lastmod:
            body = re.sub(r"<lastmod>[^<]*</lastmod>", "", body)
        return body.encode()

    html = "text/html; charset=utf-8"
    site.routes.update(
        {
            "/fagstotte/krisesenterveileder": Route(text(f"guide_{state}.html"), content_type=html),
            "/vest/feed/": Route(text(f"vest_feed_{state}.xml")),
            "/aktuelt/": Route(text(f"sor_index_{state}.html"), content_type=html),
            "/aktuelt/412/nytt-kurs-om-vold-i-naere-relasjoner/": Route(
                text(f"sor_412_{state}.html"), content_type=html
            ),
            "/aktuelt/398/snakke-lanseres-i-agder/": Route(text("sor_398.html"), content_type=html),
            "/aktuelt/420/traumebevisst-praksis-i-barnehagen/": Route(
                text("sor_420.html"), content_type=html
            ),
            "/sitemap.xml": Route(text(f"sitemap_{state}.xml"), content_type="application/xml"),
            "/fagstotte/vold/samtaler-med-barn": Route(
                text(f"page_samtaler_{state}.html"), content_type=html
            ),
            "/fagstotte/vold/trygghetsplan": Route(
                text("page_trygghetsplan.html"), content_type=html
            ),
            "/fagstotte/vold/negativ-sosial-kontroll": Route(
                text("page_kontroll.html"), content_type=html
            ),
        }
    )


@pytest.fixture
def sources(settings: Settings, site: FixtureSite, tmp_path: Path) -> dict[str, int]:
    return watch(settings, tmp_path / "sites.toml", SOURCES.format(base=site.base_url))


def collect_all(settings: Settings, sources: dict[str, int], at: datetime) -> None:
    for source_id in sources.values():
        outcome = collect_once(settings, source_id, at)
        assert outcome is not None and outcome.ok, outcome


def changes_at(settings: Settings, at: datetime) -> dict[tuple[str, str], tuple[str, str]]:
    """(source key, item title) -> (kind, note) for the changes detected at `at`."""
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(Source.key, Change.title, Change.kind, Change.note)
            .join(Item, Change.item_id == Item.id)
            .join(Source, Item.source_id == Source.id)
            .where(Change.detected_at == at)
        ).all()
    return {(key, title): (kind, note) for key, title, kind, note in rows}


@pytest.mark.parametrize("lastmod", [True, False], ids=["with-lastmod", "without-lastmod"])
def test_sites_before_and_after(settings, sources, site: FixtureSite, lastmod: bool) -> None:
    serve(site, "before", lastmod)
    collect_all(settings, sources, T0)
    first = changes_at(settings, T0)
    # The baseline reports only what was published or revised in the week before.
    # Without lastmod in the sitemap, the page's own JSON-LD date says it is recent.
    assert first == {
        ("sor", "Nytt kurs om vold i nære relasjoner"): ("new", ""),
        ("sitemap", "Trygghetsplan for voldsutsatte"): ("new", ""),
    }

    serve(site, "after", lastmod)
    collect_all(settings, sources, T1)
    assert changes_at(settings, T1) == {
        ("guide", "Fysisk sikkerhet"): (
            "updated",
            "Nytt avsnitt under «Fysisk sikkerhet». Sist faglig oppdatert 25. januar 2024.",
        ),
        ("guide", "Den første samtalen"): ("updated", "Endret tekst under «Den første samtalen»."),
        ("vest", "Ny rettleiar om tryggleiksplanar"): ("new", ""),
        ("vest", "Korleis snakke med barn om vald i heimen"): ("updated", "Endret tekst."),
        ("sor", "Traumebevisst praksis i barnehagen"): ("new", ""),
        ("sor", "Nytt kurs om vold i nære relasjoner"): (
            "updated",
            "Endret tekst under «Påmelding».",
        ),
        ("sitemap", "Samtaler med barn om vold"): (
            "updated",
            "Nytt avsnitt under «Før samtalen». Sist oppdatert 20. januar 2025.",
        ),
        ("sitemap", "Negativ sosial kontroll"): ("new", ""),
    }


def test_unchanged_sites_report_nothing(settings, sources, site: FixtureSite) -> None:
    serve(site, "before")
    collect_all(settings, sources, T0)
    later = datetime(2025, 1, 30, 10, 0, tzinfo=UTC)
    collect_all(settings, sources, later)
    assert changes_at(settings, later) == {}
    # The second pass was conditional: the listings answered 304.
    with session_scope(settings.database_url) as session:
        assert all(s.http_status in (200, 304) for s in session.scalars(select(Source)))


def test_an_item_that_leaves_the_feed_and_returns_is_not_new(settings, sources, site) -> None:
    serve(site, "after")
    collect_all(settings, sources, T0)
    feed = site.routes["/vest/feed/"].body
    without = re.sub(rb"<item>\s*<title>Ny rettleiar.*?</item>", b"", feed, flags=re.S)
    assert without != feed
    site.routes["/vest/feed/"] = Route(without)
    collect_once(settings, sources["vest"], T1)
    site.routes["/vest/feed/"] = Route(feed)
    back = datetime(2025, 2, 3, 10, 0, tzinfo=UTC)
    collect_once(settings, sources["vest"], back)
    assert changes_at(settings, back) == {}


def test_noise_makes_no_change(settings, sources, site: FixtureSite) -> None:
    serve(site, "before")
    collect_all(settings, sources, T0)
    page = site.routes["/fagstotte/krisesenterveileder"].body.decode()
    noisy = (
        page.replace('<h2 id="rammer">', '<h2  id="rammer" >')
        .replace("<p>Kommunen skal", "<p class='ingress' data-x='1'>\n   Kommunen   skal")
        .replace("kl. 10:11:12", "kl. 23:59:01")
        .replace("/fagstotte/", "/fagstotte/?utm_source=nyhetsbrev&sessionid=99")
    )
    assert noisy != page
    site.routes["/fagstotte/krisesenterveileder"] = Route(noisy.encode(), content_type="text/html")
    collect_all(settings, sources, T1)
    assert changes_at(settings, T1) == {}


BYLINES = {
    "unlabelled": '<div class="byline"><span>Kari Nordmann</span> <span>{date}, kl. 11:15</span>'
    "</div>",
    "labelled": '<div class="meta"><span class="label">Publisert:</span> <span>{date} kl. 11:15</span></div>',
}


LEADS = {
    "plain": "Kommunen inviterer til samling om vold i nære relasjoner.",
    # A date in the running text after the byline is not the article's date.
    "prose date": "Loven som trådte i kraft 1. januar 2019 endres fra 1. juli 2020.",
}


@pytest.mark.parametrize("lead", list(LEADS))
@pytest.mark.parametrize("byline", list(BYLINES))
def test_a_byline_date_outside_paragraphs_is_read(
    settings, sources, site, byline: str, lead: str
) -> None:
    """A recent article whose date stands in a div or span near the top is new at the
    baseline, not back catalogue; an old one next to it is back catalogue."""
    html = "text/html; charset=utf-8"

    def article(title: str, date: str) -> Route:
        line = BYLINES[byline].format(date=date)
        body = (
            f"<html><head><title>{title}</title></head><body><article>{line}<h1>{title}</h1>"
            f"<p>{LEADS[lead]}</p></article></body></html>"
        )
        return Route(body.encode(), content_type=html)

    site.routes.update(
        {
            "/aktuelt/": Route(
                b'<main><a href="/aktuelt/501/ny/">Ny</a><a href="/aktuelt/77/gammel/">G</a></main>',
                content_type=html,
            ),
            "/aktuelt/501/ny/": article("Ny samling", "14.01.2025"),
            "/aktuelt/77/gammel/": article("Gammel samling", "10.04.2018"),
        }
    )
    assert collect_once(settings, sources["sor"], T0).report.new == 1
    assert changes_at(settings, T0) == {("sor", "Ny samling"): ("new", "")}
    with session_scope(settings.database_url) as session:
        published = {i.title: i.published_at for i in session.scalars(select(Item))}
    assert published["Ny samling"] == datetime(2025, 1, 14, 10, 15, tzinfo=UTC)
    assert published["Gammel samling"] == datetime(2018, 4, 10, 9, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        # The byline between the heading and a lead that names an older date.
        (
            "<main><h1>Ny lov</h1><div><span>Ola</span><span>20.11.2026, kl. 11:15</span></div>"
            "<p>Loven som trådte i kraft 1. januar 2019 endres.</p></main>",
            datetime(2026, 11, 20, 10, 15, tzinfo=UTC),
        ),
        (
            "<main><h1>Ny lov</h1><p class='byline'>fredag 20. november 2026</p>"
            "<p>Loven fra 1. januar 2019 endres.</p></main>",
            datetime(2026, 11, 19, 23, 0, tzinfo=UTC),
        ),
        # First in document order: here the lead's date comes before anything else.
        (
            "<main><h1>Ny lov</h1><p>Endret 1. januar 2019? Nei.</p>"
            "<div><span>20.11.2026</span></div></main>",
            datetime(2018, 12, 31, 23, 0, tzinfo=UTC),
        ),
        # A labelled date still wins over an earlier unlabelled one.
        (
            "<main><h1>Ny lov</h1><div>1. januar 2019</div><p>Publisert 20.11.2026</p></main>",
            datetime(2026, 11, 19, 23, 0, tzinfo=UTC),
        ),
    ],
)
def test_the_first_date_at_the_top_of_an_article_is_its_date(page: str, expected) -> None:
    assert read_article(page, "https://x.no/a").published == expected
