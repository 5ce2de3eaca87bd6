"""The fast path for plain feeds must read them exactly as feedparser does."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.sites import feed as generated_feed
from digest.watch.readers.feed import _entry, _feedparser_items
from digest.watch.readers.plainfeed import read_plain
from tests.support.feeds import rss

SITES = Path(__file__).parent / "fixtures" / "sites"
URL = "https://rvtsvest.no/feed/"

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>NKVTS</title><id>urn:x</id>
<updated>2026-11-20T10:00:00Z</updated>
<entry><title type="html">Vold mot eldre &amp;amp; omsorg</title><id>urn:nkvts:1</id>
<link rel="alternate" href="/innhold/vold-mot-eldre/"/><link rel="edit" href="/wp/1"/>
<published>2026-11-19T10:00:00+01:00</published><updated>2026-11-20T10:00:00Z</updated>
<summary>Kort om temaet &lt;3 med «sitat».</summary>
<content type="html">&lt;p&gt;Hele &lt;b&gt;teksten&lt;/b&gt; her.&lt;/p&gt;</content></entry>
<entry><title>Uten innhold</title><id>urn:nkvts:2</id><link href="https://x.no/2"/>
<updated>2026-11-18T08:00:00+00:00</updated></entry></feed>""".encode()


def documents() -> dict[str, bytes]:
    docs = {
        "vest before": (SITES / "vest_feed_before.xml")
        .read_bytes()
        .replace(b"{base}", b"https://rvtsvest.no"),
        "vest after": (SITES / "vest_feed_after.xml")
        .read_bytes()
        .replace(b"{base}", b"https://rvtsvest.no"),
        "atom": ATOM,
        "test rss": rss(
            "T",
            "https://x.no/",
            [
                {
                    "title": "Æøå <i>kursiv</i>",
                    "link": "https://x.no/a?utm_source=x",
                    "summary": "<p>S</p>",
                    "published": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
                },
                {
                    "title": "",
                    "link": "https://x.no/b",
                    "guid": "g-b",
                    "published": datetime(2026, 1, 3, 3, 4, tzinfo=UTC),
                },
            ],
        ),
        "permalink guid, no link": b"""<rss version="2.0"><channel><title>T</title>
<item><title>Kun guid</title><guid>https://x.no/sak/1</guid>
<pubDate>Mon, 06 Jan 2025 08:30:00 +0100</pubDate></item>
<item><title>Ikke lenke</title><guid isPermaLink="false">sak-2</guid></item>
</channel></rss>""",
    }
    rng = random.Random(3)
    for n in range(5):
        docs[f"wordpress {n}"] = generated_feed(rng, f"https://senter{n}.no")
    return docs


@pytest.mark.parametrize("name", list(documents()))
def test_fast_path_agrees_with_feedparser(name: str) -> None:
    body = documents()[name]
    plain = read_plain(body, "application/rss+xml; charset=utf-8", URL)
    assert plain is not None, "the fast path should take this feed"
    slow = _feedparser_items(body, {"content-type": "application/rss+xml; charset=utf-8"}, URL)
    assert [_entry(i, URL) for i in plain] == [_entry(i, URL) for i in slow]


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel></channel></rss>',
        b'<rss version="0.91"><channel><item><title>x</title></item></channel></rss>',
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"></rdf:RDF>',
        b'<rss version="2.0"><channel><item><title>x</title><pubDate>i morgen</pubDate></item></channel></rss>',
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://x.no/"><entry/></feed>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title type="xhtml"><div>x</div></title></entry></feed>',
        b"<rss version='2.0'><channel><item><title>brutt",
    ],
)
def test_anything_unusual_goes_to_feedparser(body: bytes) -> None:
    assert read_plain(body, "application/xml", URL) is None
