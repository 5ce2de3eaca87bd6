"""Feeds in our own words for the fixture sites."""

from __future__ import annotations

from email.utils import format_datetime
from xml.sax.saxutils import escape


def rss(title: str, link: str, items: list[dict[str, object]]) -> bytes:
    parts = []
    for item in items:
        parts.append(
            "<item>"
            f"<title>{escape(str(item['title']))}</title>"
            f"<link>{escape(str(item['link']))}</link>"
            f"<guid>{escape(str(item.get('guid', item['link'])))}</guid>"
            f"<pubDate>{format_datetime(item['published'])}</pubDate>"  # type: ignore[arg-type]
            f"<description>{escape(str(item.get('summary', '')))}</description>"
            "</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{escape(link)}</link>"
        "<description>Testkanal</description>" + "".join(parts) + "</channel></rss>"
    ).encode()
