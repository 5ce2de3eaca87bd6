"""Hostile and broken responses from a real local server: each leaves the service running,
its source marked with a clear reason, the other sources untouched, and nothing unsafe stored.
"""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Item, Source
from digest.core.settings import Settings, get_settings
from digest.watch.xmlguard import declares_entities
from tests.support.collecting import collect_key, watch
from tests.support.feeds import rss
from tests.support.site import FixtureSite, Route
from tests.support.trickle import SLOW_HEADERS, TrickleServer

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HTML = "text/html; charset=utf-8"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
"""

# A DOCTYPE may follow comments: entities declared past the first 64 KB, and entities in
# UTF-16, where "<!ENTITY" is not the ASCII bytes, must be found all the same.
LATE_ENTITIES = (
    '<?xml version="1.0" encoding="utf-8"?>\n<!-- ' + "padding " * 13_000 + "-->\n"
    '<!DOCTYPE rss [\n<!ENTITY e "root:x:0:0">\n]>\n'
    '<rss version="2.0"><channel><title>&e;</title><link>http://example.org/</link>'
    "<item><title>&e;</title><link>http://example.org/x/</link><guid>x</guid>"
    "<description>&e;</description></item></channel></rss>"
)
LATE_SITEMAP = (
    '<?xml version="1.0" encoding="utf-8"?>\n<!-- ' + "padding " * 13_000 + "-->\n"
    '<!DOCTYPE urlset [\n<!ENTITY e "root:x:0:0">\n]>\n'
    '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    "<url><loc>http://example.org/&e;</loc></url></urlset>"
)


def utf16(text: str) -> bytes:
    return text.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")


SOURCES = """
[topics]
t = "T"

[[source]]
key = "good"
name = "Good"
kind = "feed"
url = "{base}/good"
topics = ["t"]

[[source]]
key = "feed"
name = "Feed"
kind = "feed"
url = "{base}/feed"
topics = ["t"]

[[source]]
key = "sitemap"
name = "Sitemap"
kind = "sitemap"
url = "{base}/sitemap"
topics = ["t"]

[[source]]
key = "index"
name = "Index"
kind = "index"
url = "{base}/index"
topics = ["t"]
options = {{ link_pattern = "/a/" }}

[[source]]
key = "sections"
name = "Sections"
kind = "sections"
url = "{base}/guide"
topics = ["t"]
"""


@pytest.fixture
def hostile(settings: Settings, site: FixtureSite, tmp_path: Path, env) -> Settings:
    env.setenv("DIGEST_FETCH_MAX_BYTES", "2000000")
    env.setenv("DIGEST_FETCH_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    limited = get_settings()
    watch(limited, tmp_path / "hostile.toml", SOURCES.format(base=site.base_url))
    site.routes["/good"] = Route(
        rss(
            "Good",
            site.url("/"),
            [{"title": "Trygg nyhet", "link": site.url("/n/"), "published": AT}],
        )
    )
    return limited


def collect(settings: Settings, key: str):
    return collect_key(settings, key, AT)


def stored_text(settings: Settings) -> str:
    with session_scope(settings.database_url) as session:
        items = session.scalars(select(Item)).all()
        return " ".join(f"{i.title} {i.summary_html} {i.summary_text} {i.url}" for i in items)


def rss_bytes(site: FixtureSite, title: str, summary: str) -> bytes:
    return rss(
        "X",
        site.url("/"),
        [{"title": title, "link": site.url("/x/"), "published": AT, "summary": summary}],
    )


CASES = {
    "truncated xml": ("feed", lambda s: Route(rss_bytes(s, "A", "B")[:-40]), "not well-formed"),
    "billion laughs feed": (
        "feed",
        lambda s: Route(BILLION_LAUGHS + b"<rss><channel><title>&lol9;</title></channel></rss>"),
        "declares entities",
    ),
    "external entity feed": (
        "feed",
        lambda s: Route(XXE + b"<rss><channel><title>&xxe;</title></channel></rss>"),
        "declares entities",
    ),
    "entities after 100 KB of comment": (
        "feed",
        lambda s: Route(LATE_ENTITIES.encode()),
        "declares entities",
    ),
    "entities in a UTF-16 feed": (
        "feed",
        lambda s: Route(utf16(LATE_ENTITIES), content_type="application/rss+xml"),
        "declares entities",
    ),
    "entities in a UTF-16 feed without a byte-order mark": (
        "feed",
        lambda s: Route(
            utf16(LATE_ENTITIES)[2:], content_type="application/rss+xml; charset=utf-16le"
        ),
        "declares entities",
    ),
    "entities after 100 KB of comment in a sitemap": (
        "sitemap",
        lambda s: Route(LATE_SITEMAP.encode(), content_type="application/xml"),
        "unsafe XML",
    ),
    "entities in a UTF-16 sitemap": (
        "sitemap",
        lambda s: Route(utf16(LATE_SITEMAP), content_type="application/xml"),
        "unsafe XML",
    ),
    "billion laughs sitemap": (
        "sitemap",
        lambda s: Route(
            BILLION_LAUGHS + b"<urlset><url><loc>&lol9;</loc></url></urlset>",
            content_type="application/xml",
        ),
        "unsafe XML",
    ),
    "external entity sitemap": (
        "sitemap",
        lambda s: Route(
            XXE + b"<urlset><url><loc>&xxe;</loc></url></urlset>", content_type="application/xml"
        ),
        "unsafe XML",
    ),
    "20 MB page": (
        "sections",
        lambda s: Route(b"<html><body>" + b"<p>x</p>" * 2_500_000, content_type=HTML),
        "larger than 2000000 bytes",
    ),
    "gzip bomb": (
        "index",
        lambda s: Route(b"<html>" + b" " * 50_000_000, gzip=True, content_type=HTML),
        "larger than 2000000 bytes",
    ),
    "drip": ("feed", lambda s: Route(rss_bytes(s, "A", "B"), drip_seconds=0.2), ""),
    "redirect loop": (
        "feed",
        lambda s: Route(status=302, headers={"Location": s.url("/feed")}),
        "redirects",
    ),
    "404": ("feed", lambda s: Route(b"nope", status=404, content_type="text/plain"), "HTTP 404"),
    "410": ("index", lambda s: Route(b"gone", status=410, content_type="text/plain"), "HTTP 410"),
    "500": ("sitemap", lambda s: Route(b"oops", status=500, content_type="text/plain"), "HTTP 500"),
    "empty 200 feed": ("feed", lambda s: Route(b""), "empty"),
    "empty 200 sitemap": ("sitemap", lambda s: Route(b"", content_type="application/xml"), "empty"),
    "html instead of feed": (
        "feed",
        lambda s: Route(b"<html><body>Hei</body></html>", content_type=HTML),
        "not a readable feed",
    ),
}
PATHS = {"feed": "/feed", "sitemap": "/sitemap", "index": "/index", "sections": "/guide"}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_response(hostile: Settings, site: FixtureSite, case: str) -> None:
    key, route, reason = CASES[case]
    site.routes[PATHS[key]] = route(site)
    outcome = collect(hostile, key)
    assert not outcome.ok
    assert (
        reason in outcome.error
        if reason
        else ("took longer" in outcome.error or "timed out" in outcome.error)
    )
    with session_scope(hostile.database_url) as session:
        row = session.scalar(select(Source).where(Source.key == key))
        assert row.error and row.status in ("failing", "broken", "disabled")
    good = collect(hostile, "good")
    assert good.ok and good.report.new == 1
    assert "root:" not in stored_text(hostile)  # no file content leaked through an entity


def test_script_and_javascript_links_are_not_stored(hostile: Settings, site) -> None:
    nasty = (
        '<p>Hei <script>alert(1)</script><img src=x onerror="alert(2)">'
        '<a href="javascript:alert(3)">klikk</a> <a href="https://ok.no/">ok</a></p>'
    )
    site.routes["/feed"] = Route(rss_bytes(site, "<b onmouseover=alert(4)>Tittel</b>", nasty))
    assert collect(hostile, "feed").ok
    site.routes["/index"] = Route(
        b'<html><body><a href="javascript:alert(1)//a/">x</a><a href="/a/1">Sak</a></body></html>',
        content_type=HTML,
    )
    site.routes["/a/1"] = Route(
        (
            b"<html><body><article><h1>Sak<script>alert(5)</script></h1>"
            b"<p onclick='alert(6)'>Tekst</p></article></body></html>"
        ),
        content_type=HTML,
    )
    assert collect(hostile, "index").ok
    text = stored_text(hostile)
    for unsafe in ("<script", "onerror", "onmouseover", "onclick", "javascript:", "alert("):
        assert unsafe not in text
    assert 'href="https://ok.no/"' in text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<p>Blåbær og ærfugl på Østlandet</p>".encode("windows-1252"), "text/html"),
        ("<p>Blåbær og ærfugl på Østlandet</p>".encode("windows-1252"), "text/html; charset=utf-8"),
        (codecs.BOM_UTF8 + "<p>Blåbær og ærfugl på Østlandet</p>".encode(), "text/html"),
        ("<p>Blåbær og ærfugl på Østlandet</p>".encode(), "text/html; charset=iso-8859-1"),
    ],
    ids=["cp1252-undeclared", "cp1252-declared-utf8", "utf8-bom", "utf8-declared-latin1"],
)
def test_encodings_are_read_right(hostile: Settings, site, body: bytes, content_type: str) -> None:
    page = b"<html><body><main><h2 id='k'>Kapittel</h2>" + body + b"</main></body></html>"
    site.routes["/guide"] = Route(page, content_type=content_type)
    assert collect(hostile, "sections").ok
    with session_scope(hostile.database_url) as session:
        item = session.scalar(select(Item))
        assert item.summary_text == "Blåbær og ærfugl på Østlandet"


def test_wrongly_declared_feed_encoding(hostile: Settings, site) -> None:
    body = rss_bytes(site, "Blåbær", "Ærfugl").replace(
        b'encoding="utf-8"', b'encoding="iso-8859-1"'
    )
    site.routes["/feed"] = Route(body.decode("utf-8").encode("utf-8"))
    assert collect(hostile, "feed").ok
    assert "Blåbær" in stored_text(hostile)


def test_a_server_trickling_its_headers_fails_only_its_source(hostile: Settings) -> None:
    server = TrickleServer(SLOW_HEADERS, pause=0.05).start()
    try:
        with session_scope(hostile.database_url) as session:
            row = session.scalar(select(Source).where(Source.key == "feed"))
            row.url = server.url("/feed")
        outcome = collect(hostile, "feed")
        assert not outcome.ok
        assert outcome.error == "took longer than 1.5 s"  # 3 x the 0.5 s timeout
        assert server.cut_off.wait(timeout=60)
        assert not server.finished.is_set()
    finally:
        server.stop()
    with session_scope(hostile.database_url) as session:
        row = session.scalar(select(Source).where(Source.key == "feed"))
        assert row.error == "took longer than 1.5 s"
    assert collect(hostile, "good").ok


ENTITY_DOC = (
    '<?xml version="1.0" encoding="{enc}"?>\n<!DOCTYPE r [\n<!ENTITY e "x">\n]>\n<r>&e;</r>'
)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (ENTITY_DOC.format(enc="utf-8").encode(), ""),
        (ENTITY_DOC.format(enc="utf-8").replace("ENTITY", "entity").encode(), ""),
        (ENTITY_DOC.format(enc="utf-16").encode("utf-16-be"), ""),
        (ENTITY_DOC.format(enc="utf-32").encode("utf-32"), ""),
        (b"\xef\xbb\xbf" + ENTITY_DOC.format(enc="utf-16le").encode("utf-16-le"), ""),
        (ENTITY_DOC.format(enc="cp037").encode("cp037"), ""),
        (ENTITY_DOC.format(enc="utf-7").encode("utf-7").replace(b"<!", b"+ADwAIQ-"), ""),
        (b"<?xml version='1.0'?>\\u003c!ENTITY e 'x'>", "text/xml; charset=unicode_escape"),
    ],
    ids=["utf-8", "lower-case", "utf-16-be", "utf-32", "misaligned", "ebcdic", "utf-7", "escape"],
)
def test_entity_declarations_are_found_in_any_encoding(body: bytes, content_type: str) -> None:
    assert declares_entities(body, content_type)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><rss><channel><title>&lt;!ENTITY&gt; &amp; co</title></channel></rss>',
        '<?xml version="1.0" encoding="utf-16"?><rss><channel/></rss>'.encode("utf-16"),
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "x"><rss/>',
    ],
)
def test_documents_without_entity_declarations_pass(body: bytes) -> None:
    assert not declares_entities(body, "application/rss+xml")
