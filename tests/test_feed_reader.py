"""The feed reader on bytes: RSS, Atom, sanitising, and feeds that cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.watch.entries import ReadError
from digest.watch.readers.feed import _feedparser_items, read

NYNORSK_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>RVTS Vest</title><link>https://rvtsvest.no/</link>
<item>
  <title>Korleis snakke med barn om vald</title>
  <link>https://rvtsvest.no/korleis-snakke/?utm_source=rss&amp;utm_medium=rss</link>
  <guid isPermaLink="false">https://rvtsvest.no/?p=4711</guid>
  <pubDate>Tue, 24 Nov 2026 09:15:00 +0000</pubDate>
  <description><![CDATA[<p>Ein rettleiar <script>alert(1)</script>for tilsette
  <img src=x onerror="alert(2)"> i barnehagen. <a href="javascript:alert(3)">Les</a></p>]]></description>
  <content:encoded><![CDATA[<p>Heile teksten om <strong>samtalar</strong>.</p><p>Del to.</p>]]></content:encoded>
</item>
<item>
  <title>Utan lenkje</title>
  <pubDate>Mon, 23 Nov 2026 09:15:00 +0000</pubDate>
</item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>NKVTS</title><id>urn:x</id>
<updated>2026-11-20T10:00:00Z</updated>
<entry><title type="html">Vold mot eldre &amp;amp; omsorg</title><id>urn:nkvts:1</id>
<link href="/innhold/vold-mot-eldre/"/>
<published>2026-11-19T10:00:00+01:00</published><updated>2026-11-20T10:00:00Z</updated>
<summary>Kort om temaet.</summary></entry></feed>"""


def test_rss_entries_are_read_and_sanitised() -> None:
    result = read(
        NYNORSK_RSS, {"content-type": "application/rss+xml"}, "https://rvtsvest.no/feed/", {}
    )
    # The second item has neither link nor guid: nothing to know it by, so it is dropped.
    assert len(result.entries) == 1
    entry = result.entries[0]
    assert entry.key == "https://rvtsvest.no/?p=4711"
    assert entry.url == "https://rvtsvest.no/korleis-snakke/"  # tracking parameters dropped
    assert entry.title == "Korleis snakke med barn om vald"
    assert entry.published_at == datetime(2026, 11, 24, 9, 15, tzinfo=UTC)
    for unsafe in ("<script", "onerror", "javascript:", "alert(1)"):
        assert unsafe not in entry.summary_html
    assert "Ein rettleiar" in entry.summary_text and "<" not in entry.summary_text
    assert entry.content_text == "Heile teksten om samtalar. Del to."


def test_atom_relative_links_resolve_against_the_feed() -> None:
    result = read(ATOM, {}, "https://voldsveileder.nkvts.no/feed/atom/", {})
    entry = result.entries[0]
    assert entry.url == "https://voldsveileder.nkvts.no/innhold/vold-mot-eldre/"
    assert entry.title == "Vold mot eldre & omsorg"
    assert entry.published_at == datetime(2026, 11, 19, 9, 0, tzinfo=UTC)


def test_the_content_hash_follows_title_and_text() -> None:
    first = read(ATOM, {}, "https://x.no/feed", {}).entries[0]
    again = read(ATOM, {}, "https://x.no/feed", {}).entries[0]
    changed = read(
        ATOM.replace(b"Kort om temaet", b"Lengre om temaet"), {}, "https://x.no/feed", {}
    ).entries[0]
    assert first.content_hash == again.content_hash != changed.content_hash


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<html><body>Ikke en feed</body></html>",
        b"<?xml version='1.0'?><rss><channel><item><title>brutt",
    ],
)
def test_unreadable_feeds_raise_a_clear_error(body: bytes) -> None:
    with pytest.raises(ReadError, match="feed"):
        read(body, {}, "https://x.no/feed", {})


# Entities hidden from a byte search by the encoding feedparser is told to use.
HIDDEN_ENTITY = (
    b'<?xml version="1.0" encoding="iso 2022 jp"?>'
    b'<!DOCTYPE rss [<!EN\x1b(BTITY a "PWNED-ENTITY">]>'
    b'<rss version="2.0"><channel><title>T</title><link>https://x.no/</link>'
    b"<item><title>x &a; y</title><link>https://x.no/1</link><guid>g1</guid></item>"
    b"</channel></rss>"
)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (HIDDEN_ENTITY, "application/rss+xml"),
        (HIDDEN_ENTITY.replace(b"iso 2022 jp", b"utf-8"), "application/xml; charset=iso-2022-jp"),
    ],
    ids=["declared", "in the header"],
)
def test_feedparser_never_reads_a_text_that_declares_entities(
    body: bytes, content_type: str
) -> None:
    # The check on the text feedparser decodes, behind the one on the bytes in read().
    with pytest.raises(ReadError, match="declares entities"):
        _feedparser_items(body, {"content-type": content_type}, "https://x.no/feed")


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_a_body_is_never_taken_for_a_file_name(relative: bool, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "feed.xml").write_bytes(NYNORSK_RSS)  # a feed feedparser would read
    path = "feed.xml" if relative else str(tmp_path / "feed.xml")
    with pytest.raises(ReadError, match="not a readable feed"):
        _feedparser_items(path.encode(), {}, "https://x.no/feed")
