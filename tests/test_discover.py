"""Discovering a site's feeds, sitemaps and article-link pattern."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

from digest.watch.discover import feed_links, guess_index_pattern, sitemaps_in_robots
from tests.support import command
from tests.support.feeds import rss
from tests.support.site import FixtureSite, Route

SITES = Path(__file__).parent / "fixtures" / "sites"


def test_feed_links_from_the_head() -> None:
    html = (
        '<head><link rel="alternate" type="application/rss+xml" href="/feed/">'
        '<link rel="alternate" type="text/html" hreflang="se" href="/se/">'
        '<link rel="alternate" type="application/atom+xml; charset=utf-8" href="https://x.no/atom">'
        "</head>"
    )
    assert feed_links(html, "https://x.no/") == ["https://x.no/feed/", "https://x.no/atom"]


def test_sitemaps_in_robots() -> None:
    text = "User-agent: *\nDisallow: /admin\nSitemap: https://x.no/sitemap_index.xml\n"
    assert sitemaps_in_robots(text) == ["https://x.no/sitemap_index.xml"]


def test_index_pattern_with_numbered_articles() -> None:
    html = (SITES / "sor_index_after.html").read_text(encoding="utf-8")
    pattern, examples = guess_index_pattern(html, "https://www.rvtssor.no/aktuelt/")
    assert pattern == r"^https://www\.rvtssor\.no/aktuelt/\d+/[^/?#]+/?$"
    assert "https://www.rvtssor.no/aktuelt/420/traumebevisst-praksis-i-barnehagen/" in examples


def test_discover_command_prints_a_usable_source(settings, site: FixtureSite) -> None:
    site.routes["/"] = Route(
        b"<html><head><title>RVTS Test</title></head><body>"
        b'<a href="/aktuelt/1/a/">A</a><a href="/aktuelt/2/b/">B</a><a href="/aktuelt/3/c/">C</a>'
        b'<a href="/om/">Om</a></body></html>',
        content_type="text/html",
    )
    site.routes["/robots.txt"] = Route(
        f"Sitemap: {site.url('/kart.xml')}\n".encode(), content_type="text/plain"
    )
    site.routes["/kart.xml"] = Route(
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{site.url("/a")}'
        "</loc></url></urlset>".encode(),
        content_type="application/xml",
    )
    result = command.digest("sources", "discover", site.url("/"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"sitemaps:  {site.url('/kart.xml')}" in result.stdout
    assert "feeds:     none found" in result.stdout
    entry = tomllib.loads(result.stdout.split("\n\n", 1)[1])["source"][0]
    assert entry["kind"] == "sitemap" and entry["url"] == site.url("/kart.xml")

    site.routes["/feed/"] = Route(
        rss(
            "T",
            site.url("/"),
            [
                {
                    "title": "Sak",
                    "link": site.url("/sak/"),
                    "published": datetime(2026, 1, 1, tzinfo=UTC),
                }
            ],
        )
    )
    result = command.digest("sources", "discover", site.url("/"), timeout=60)
    entry = tomllib.loads(result.stdout.split("\n\n", 1)[1])["source"][0]
    assert entry["kind"] == "feed" and entry["url"] == site.url("/feed/")
