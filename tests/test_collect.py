"""Collecting over real HTTP: conditional GET, limits, broken feeds, and source health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import Item, Source
from digest.core.settings import Settings, get_settings
from digest.watch.sources import load_sources, sync_sources
from digest.watch.urls import BadLink, canonical_url
from tests.support import command
from tests.support.collecting import collect_once
from tests.support.feeds import rss
from tests.support.site import FixtureSite, Route

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def feed(site: FixtureSite, n: int = 2) -> bytes:
    return rss(
        "RVTS Test",
        site.url("/"),
        [
            {
                "title": f"Sak {i}",
                "link": site.url(f"/aktuelt/{i}/"),
                "published": AT - timedelta(hours=i),
            }
            for i in range(n)
        ],
    )


@pytest.fixture
def synced(settings: Settings) -> dict[str, int]:
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(settings.sources_file))
        return {s.key: s.id for s in session.scalars(select(Source))}


def source(settings: Settings, source_id: int) -> Source:
    with session_scope(settings.database_url) as session:
        return session.get_one(Source, source_id)


def items(settings: Settings, source_id: int) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalar(
            select(func.count()).select_from(Item).where(Item.source_id == source_id)
        )


def test_a_broken_feed_marks_only_its_source(settings, synced, site: FixtureSite) -> None:
    site.routes["/feed/"] = Route(feed(site))
    site.routes["/barn/feed/"] = Route(b"<rss><channel><item><title>avbrutt", status=200)
    good = collect_once(settings, synced["rvts-test"], AT)
    bad = collect_once(settings, synced["barn-test"], AT)
    assert good.ok and good.report.new == 2
    assert not bad.ok and "not well-formed" in bad.error
    broken = source(settings, synced["barn-test"])
    assert broken.status == "failing" and broken.consecutive_failures == 1
    assert source(settings, synced["rvts-test"]).status == "ok"


def test_conditional_get_costs_no_parsing(settings, synced, site: FixtureSite) -> None:
    site.routes["/feed/"] = Route(feed(site))
    collect_once(settings, synced["rvts-test"], AT)
    again = collect_once(settings, synced["rvts-test"], AT + timedelta(hours=1))
    assert again.ok and again.not_modified
    assert site.requests[-1][1].get("If-None-Match", "").startswith('"')


def test_a_failure_keeps_what_was_stored_and_backs_off(settings, synced, site: FixtureSite) -> None:
    site.routes["/feed/"] = Route(feed(site, 3))
    collect_once(settings, synced["rvts-test"], AT)
    site.routes["/feed/"] = Route(b"Internal error", status=500, content_type="text/plain")
    delays = []
    for n in range(3):
        at = AT + timedelta(hours=n + 1)
        outcome = collect_once(settings, synced["rvts-test"], at)
        assert not outcome.ok and "HTTP 500" in outcome.error
        delays.append(source(settings, synced["rvts-test"]).next_check_at - at)
    assert delays[0] < delays[1] < delays[2] <= timedelta(days=1)
    assert items(settings, synced["rvts-test"]) == 3
    site.routes["/feed/"] = Route(feed(site, 3))
    recovered = collect_once(settings, synced["rvts-test"], AT + timedelta(days=1))
    assert recovered.ok and recovered.not_modified  # the ETag survived the failures
    assert source(settings, synced["rvts-test"]).consecutive_failures == 0


@pytest.mark.parametrize(
    ("status", "state", "enabled"), [(404, "broken", True), (410, "disabled", False)]
)
def test_gone_feeds(settings, synced, site: FixtureSite, status, state, enabled) -> None:
    site.routes["/feed/"] = Route(b"", status=status, content_type="text/plain")
    outcome = collect_once(settings, synced["rvts-test"], AT)
    row = source(settings, synced["rvts-test"])
    assert not outcome.ok and row.status == state and row.enabled is enabled
    assert row.http_status == status


def test_permanent_redirect_updates_the_url(settings, synced, site: FixtureSite) -> None:
    site.routes["/feed/"] = Route(status=301, headers={"Location": site.url("/ny-feed/")})
    site.routes["/ny-feed/"] = Route(feed(site))
    outcome = collect_once(settings, synced["rvts-test"], AT)
    row = source(settings, synced["rvts-test"])
    assert outcome.ok and row.url == site.url("/ny-feed/")
    assert "moved permanently" in row.error


def test_redirect_loop_is_cut(settings, synced, site: FixtureSite) -> None:
    site.routes["/feed/"] = Route(status=302, headers={"Location": site.url("/feed2/")})
    site.routes["/feed2/"] = Route(status=302, headers={"Location": site.url("/feed/")})
    outcome = collect_once(settings, synced["rvts-test"], AT)
    assert not outcome.ok and "redirects" in outcome.error


@pytest.fixture
def small_limits(env: pytest.MonkeyPatch, settings: Settings) -> Settings:
    env.setenv("DIGEST_FETCH_MAX_BYTES", "50000")
    env.setenv("DIGEST_FETCH_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    return get_settings()


def test_oversized_and_gzip_bomb_bodies_are_cut(small_limits, synced, site: FixtureSite) -> None:
    site.routes["/feed/"] = Route(b"<rss>" + b"x" * 200_000)
    outcome = collect_once(small_limits, synced["rvts-test"], AT)
    assert not outcome.ok and "larger than 50000 bytes" in outcome.error
    site.routes["/barn/feed/"] = Route(b"<rss>" + b"\0" * 5_000_000, gzip=True)
    outcome = collect_once(small_limits, synced["barn-test"], AT)
    assert not outcome.ok and "larger than 50000 bytes" in outcome.error


def test_a_dripping_server_is_cut_off(small_limits, synced, site: FixtureSite) -> None:
    site.routes["/feed/"] = Route(feed(site), drip_seconds=0.2)
    outcome = collect_once(small_limits, synced["rvts-test"], AT)
    assert not outcome.ok and ("took longer" in outcome.error or "timed out" in outcome.error)


def test_a_pattern_that_suddenly_matches_nothing_is_a_warning(settings, site, tmp_path) -> None:
    from digest.watch.sources import load_sources

    path = tmp_path / "index.toml"
    path.write_text(
        '[topics]\nt = "T"\n[[source]]\nkey = "sor"\nname = "Sør"\nkind = "index"\n'
        f'url = "{site.url("/aktuelt/")}"\ntopics = ["t"]\n'
        'options = { link_pattern = "/aktuelt/\\\\d+/" }\n',
        encoding="utf-8",
    )
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(path))
        source_id = session.scalar(select(Source.id).where(Source.key == "sor"))
    site.routes["/aktuelt/"] = Route(b'<a href="/aktuelt/1/a/">A</a>', content_type="text/html")
    site.routes["/aktuelt/1/a/"] = Route(b"<h1>A</h1><p>Tekst.</p>", content_type="text/html")
    assert collect_once(settings, source_id, AT).ok
    assert source(settings, source_id).warning is None
    # The site is redesigned: its links now look different.
    site.routes["/aktuelt/"] = Route(b'<a href="/nyheter/a">A</a>', content_type="text/html")
    outcome = collect_once(settings, source_id, AT + timedelta(hours=2))
    assert outcome.ok
    assert "no link on the page matched" in source(settings, source_id).warning
    listed = command.digest("sources", "list", timeout=60).stdout
    assert "warning: no link on the page matched" in listed


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("http://[2001:db8::1]/x", "http://[2001:db8::1]/x"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("https://[2001:DB8::A]:443/x?utm_source=y#z", "https://[2001:db8::a]/x"),
        ("http://[::ffff:192.0.2.1]/", "http://[::ffff:192.0.2.1]/"),
        ("http://user@[2001:db8::1]:81", "http://[2001:db8::1]:81/"),
        ("http://Bærum.Kommune.no/sak", "http://bærum.kommune.no/sak"),
        ("http://www.rvts_sor.no:8080/a", "http://www.rvts_sor.no:8080/a"),
    ],
)
def test_canonical_urls_keep_ipv6_brackets(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


@pytest.mark.parametrize(
    "url",
    [
        "http://exa mple.org/x",
        "http://exa%20mple.org/x",
        "http://example.org\u00a0/x",
        "http://ex<ample>.org/x",
        "http://[v1.fe]/x",  # a future IP literal, not an address anyone serves
        "http://[fe80::1%25eth0]/x",
        "http://[2001:db8::zz]/x",
        'http://exam"ple.org/',
    ],
)
def test_a_host_with_characters_no_host_has_is_a_bad_link(url: str) -> None:
    with pytest.raises(BadLink):
        canonical_url(url)


def test_links_with_an_ipv6_host_are_kept_and_a_broken_host_is_skipped(
    settings, synced, site: FixtureSite
) -> None:
    links = ["http://exa mple.org/x", "http://[2001:db8::1]/sak/", site.url("/aktuelt/1/")]
    site.routes["/feed/"] = Route(
        rss(
            "RVTS Test",
            site.url("/"),
            [{"title": f"Sak {n}", "link": link, "published": AT} for n, link in enumerate(links)],
        )
    )
    outcome = collect_once(settings, synced["rvts-test"], AT)
    assert outcome.ok and outcome.report.new == 2
    assert "skipped 1 link(s)" in source(settings, synced["rvts-test"]).warning
    assert "exa mple.org" in source(settings, synced["rvts-test"]).warning
    with session_scope(settings.database_url) as session:
        urls = set(session.scalars(select(Item.url)))
    assert urls == {"http://[2001:db8::1]/sak/", site.url("/aktuelt/1/")}
