"""Limits on one source's pass: a wall-clock budget, so that a site whose pages trickle
cannot hold a worker for a pass of 30 fetch deadlines, and a source whose every page
failed is not reported healthy.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Item, Source
from digest.core.settings import Settings, get_settings
from digest.watch.collect import CollectOutcome, collect_sources, sessions_for
from tests.support.collecting import watch
from tests.support.feeds import rss
from tests.support.site import FixtureSite, Route

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HTML = "text/html; charset=utf-8"

SOURCES = """
[topics]
t = "T"

[[source]]
key = "slow-index"
name = "Treg"
kind = "index"
url = "{slow}/aktuelt/"
topics = ["t"]
options = {{ link_pattern = "/sak/" }}

[[source]]
key = "other-host"
name = "Annen"
kind = "feed"
url = "{other}/feed/"
topics = ["t"]
"""


def page(title: str) -> bytes:
    return (
        f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1>"
        "<p>Publisert 19.11.2026</p><p>Tekst.</p></main></body></html>"
    ).encode()


@pytest.fixture
def other_site() -> Iterator[FixtureSite]:
    """A second site on another host, so that it is not paced with the slow one."""
    server = FixtureSite(host="127.0.0.2").start()
    yield server
    server.stop()


@pytest.fixture
def limited(
    settings: Settings, env: pytest.MonkeyPatch, site: FixtureSite, other_site, tmp_path: Path
) -> dict[str, int]:
    """Short limits: a page that trickles takes a whole fetch deadline (1.5 s), which is
    as much as the pass's budget (1.5 s); the listing and a quick page take far less."""
    path = tmp_path / "limits.toml"
    ids = watch(settings, path, SOURCES.format(slow=site.base_url, other=other_site.base_url))
    env.setenv("DIGEST_SOURCES_FILE", str(path))
    env.setenv("DIGEST_FETCH_TIMEOUT_SECONDS", "0.5")
    env.setenv("DIGEST_FETCH_SOURCE_BUDGET_SECONDS", "1.5")
    get_settings.cache_clear()
    other_site.routes["/feed/"] = Route(
        rss(
            "Annen",
            other_site.url("/"),
            [{"title": "Sak", "link": other_site.url("/a/"), "published": AT}],
        )
    )
    return ids


def serve_index(site: FixtureSite, quick: list[str], dripping: list[str]) -> None:
    """An index of quick pages followed by pages that trickle until the fetch deadline."""
    anchors = "".join(f'<a href="{path}">{path}</a>' for path in quick + dripping)
    site.routes["/aktuelt/"] = Route(f"<main>{anchors}</main>".encode(), content_type=HTML)
    for path in quick:
        site.routes[path] = Route(page(f"Rask {path}"), content_type=HTML)
    for path in dripping:
        # One byte each 0.2 s of a long page: the fetch ends at its deadline, 1.5 s.
        site.routes[path] = Route(page(f"Treg {path}") * 20, content_type=HTML, drip_seconds=0.2)


def collect(at: datetime) -> dict[str, CollectOutcome]:
    settings = get_settings()
    with session_scope(settings.database_url) as session:
        pairs = [(s.id, urlsplit(s.url).hostname or "") for s in session.scalars(select(Source))]
    outcomes = collect_sources(
        pairs, at, sessions=sessions_for(settings.database_url), settings=settings
    )
    return {o.key: o for o in outcomes}


def requested(site: FixtureSite, paths: list[str]) -> int:
    return sum(1 for path, _headers in site.requests if path in paths)


def source(settings: Settings, key: str) -> Source:
    with session_scope(settings.database_url) as session:
        return session.scalars(select(Source).where(Source.key == key)).one()


def pages_of(settings: Settings, source_id: int) -> dict[str, bool]:
    """The source's items by URL: whether each was read (True) or only listed (False)."""
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(Item).where(Item.source_id == source_id))
        return {item.key: item.content_hash is not None for item in rows}


DRIPPING = [f"/sak/treg-{n}/" for n in range(5)]


def test_a_pass_stops_reading_pages_when_its_budget_is_spent(
    settings: Settings, limited: dict[str, int], site: FixtureSite, other_site: FixtureSite
) -> None:
    serve_index(site, ["/sak/0/"], [])
    assert collect(AT)["slow-index"].report.new == 1  # the baseline
    other_site.requests.clear()
    # Five more pages that trickle, after one new quick page.
    serve_index(site, ["/sak/0/", "/sak/1/"], DRIPPING)
    site.requests.clear()
    outcomes = collect(AT + timedelta(hours=1))
    # The quick page and one trickling page were fetched: that page alone spent the
    # budget, so the four after it were left for the next pass.
    assert requested(site, ["/sak/1/"]) == 1
    assert requested(site, DRIPPING) == 1
    slow = source(settings, "slow-index")
    assert slow.status == "ok", slow.error
    assert outcomes["slow-index"].ok and outcomes["slow-index"].report.new == 1
    assert "budget of 1.5 s" in slow.warning and "4 page(s) left for the next pass" in slow.warning
    assert "1 page(s) could not be read" in slow.warning
    # The other host's source, after the slow one in the same run, is collected too.
    assert outcomes["other-host"].ok and other_site.requests
    # Next pass, the pages left over (and the one that failed) are read and are new,
    # although the listing itself has not changed.
    serve_index(site, ["/sak/0/", "/sak/1/", *DRIPPING], [])
    again = collect(AT + timedelta(hours=2))["slow-index"]
    assert again.ok and again.report.new == len(DRIPPING), again.describe()
    assert all(pages_of(settings, limited["slow-index"]).values())


def test_at_the_baseline_the_pages_left_are_listed_to_be_read_quietly(
    settings: Settings, limited: dict[str, int], site: FixtureSite
) -> None:
    serve_index(site, ["/sak/0/"], DRIPPING)
    outcome = collect(AT)["slow-index"]
    assert requested(site, DRIPPING) == 1
    assert outcome.ok and outcome.report.new == 1
    pages = pages_of(settings, limited["slow-index"])
    # Read: the quick page. Listed, to be read on the slow cycle without a report: the
    # four left by the budget. The one that failed is neither.
    assert pages == {site.url("/sak/0/"): True} | {site.url(path): False for path in DRIPPING[1:]}


def test_a_pass_whose_every_page_failed_is_a_failure(
    settings: Settings, limited: dict[str, int], site: FixtureSite
) -> None:
    serve_index(site, [], DRIPPING)
    outcomes = collect(AT)
    assert requested(site, DRIPPING) == 1
    slow = source(settings, "slow-index")
    assert slow.status == "failing" and slow.consecutive_failures == 1
    assert "no page could be read" in slow.error and "took longer than" in slow.error
    assert not outcomes["slow-index"].ok
    assert outcomes["other-host"].ok


def test_a_pass_whose_only_page_is_gone_is_not_a_failure(
    settings: Settings, limited: dict[str, int], site: FixtureSite
) -> None:
    serve_index(site, ["/sak/0/"], [])
    assert collect(AT)["slow-index"].ok
    # The listing now links a page the site no longer has: a stale link, not a broken site.
    serve_index(site, ["/sak/0/", "/sak/borte/"], [])
    del site.routes["/sak/borte/"]
    outcome = collect(AT + timedelta(hours=1))["slow-index"]
    slow = source(settings, "slow-index")
    assert outcome.ok and slow.status == "ok", slow.error
    assert "404" in slow.warning
