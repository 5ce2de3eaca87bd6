"""Generated sites for the benchmark: feeds, sitemaps, index pages and guide pages."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from tests.support.site import Route

WORDS = [
    "vold",
    "krisesenter",
    "barn",
    "samtale",
    "trygghet",
    "kommune",
    "veileder",
    "ansatte",
    "omsorg",
    "traumer",
    "samarbeid",
    "kartlegging",
    "beskyttelse",
    "tilbud",
    "plan",
    "kurs",
    "rettleiar",
    "tenester",
    "helse",
    "foreldre",
    "skole",
    "barnehage",
    "rutiner",
    "oppfølging",
    "sikkerhet",
    "risiko",
]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HTML = "text/html; charset=utf-8"


def _sentence(rng: random.Random, n: int = 14) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, n: int) -> str:
    return "".join(
        f"<p>{_sentence(rng)} <a href='https://example.org/{rng.randint(1, 999)}'>"
        f"{rng.choice(WORDS)}</a> {_sentence(rng)}</p>"
        for _ in range(n)
    )


def _wordpress_content(rng: random.Random, base: str) -> str:
    """Post content as WordPress's block editor writes it: classes, figures, spans, lists."""
    image = rng.randint(1, 9999)
    blocks = [
        f'<p class="has-medium-font-size">{_sentence(rng)} <strong>{_sentence(rng, 4)}</strong> '
        f'<a href="/{rng.choice(WORDS)}/" data-type="page" data-id="{image}">'
        f"{_sentence(rng, 3)}</a></p>",
        f'<figure class="wp-block-image size-large"><img loading="lazy" decoding="async" '
        f'width="1024" height="683" src="{base}/wp-content/uploads/2026/11/bilde-{image}.jpg" '
        f'alt="{_sentence(rng, 4)}" class="wp-image-{image}" srcset="{base}/wp-content/uploads/'
        f"2026/11/bilde-{image}-300x200.jpg 300w, {base}/wp-content/uploads/2026/11/bilde-"
        f'{image}-768x512.jpg 768w" sizes="(max-width: 1024px) 100vw, 1024px" />'
        f'<figcaption class="wp-element-caption">{_sentence(rng, 8)}</figcaption></figure>',
        f'<h2 class="wp-block-heading" id="h-{image}">{_sentence(rng, 4)}</h2>',
        '<ul class="wp-block-list">'
        + "".join(
            f'<li><span style="font-weight: 400;">{_sentence(rng, 9)}</span></li>' for _ in range(5)
        )
        + "</ul>",
        *(
            f'<p><span style="font-weight: 400;">{_sentence(rng, 30)}</span> '
            f"<em>{_sentence(rng, 5)}</em></p>"
            for _ in range(6)
        ),
        f'<div class="wp-block-buttons"><div class="wp-block-button"><a class="wp-block-button'
        f'__link wp-element-button" href="{base}/pamelding/">Meld deg på</a></div></div>',
        f'<p>Innlegget <a href="{base}/?p={image}">{_sentence(rng, 3)}</a> dukket først opp på '
        f'<a href="{base}">Senteret</a>.</p>',
    ]
    return "".join(blocks)


def feed(rng: random.Random, base: str, items: int = 10) -> bytes:
    parts = []
    for i in range(items):
        when = NOW - timedelta(hours=6 * i + rng.randint(0, 5))
        parts.append(
            f"<item><title>{_sentence(rng, 6)}</title><link>{base}/post-{i}/</link>"
            f"<guid isPermaLink='false'>{base}/?p={i}</guid>"
            f"<pubDate>{format_datetime(when)}</pubDate>"
            f"<description><![CDATA[<p>{_sentence(rng)}</p>]]></description>"
            f"<content:encoded><![CDATA[{_wordpress_content(rng, base)}]]></content:encoded>"
            "</item>"
        )
    return (
        "<?xml version='1.0' encoding='UTF-8'?><rss version='2.0' "
        "xmlns:content='http://purl.org/rss/1.0/modules/content/'><channel>"
        f"<title>Senter</title><link>{base}/</link><description>x</description>"
        + "".join(parts)
        + "</channel></rss>"
    ).encode()


def article(rng: random.Random, title: str, when: datetime) -> bytes:
    return (
        "<!DOCTYPE html><html lang='nb'><head><meta charset='utf-8'>"
        f"<title>{title}</title><meta property='article:published_time' "
        f"content='{when.isoformat()}'></head><body><header><nav><a href='/'>Hjem</a>"
        f"</nav></header><main><h1>{title}</h1>{_paragraphs(rng, 4)}<h2>Mer</h2>"
        f"{_paragraphs(rng, 4)}</main><footer>Senteret</footer></body></html>"
    ).encode()


def guide(rng: random.Random, chapters: int = 8) -> bytes:
    body = "".join(
        f"<h2 id='k{c}'>Kapittel {c}: {_sentence(rng, 3)}</h2>{_paragraphs(rng, 5)}"
        f"<p>Sist faglig oppdatert {rng.randint(1, 28)}. mars 2026</p>"
        for c in range(chapters)
    )
    return (
        "<!DOCTYPE html><html lang='nb'><head><meta charset='utf-8'><title>Veileder</title>"
        f"</head><body><nav>meny</nav><main><h1>Veileder</h1>{body}</main></body></html>"
    ).encode()


def build(
    base: str, counts: dict[str, int], seed: int = 7, share: tuple[int, int] = (0, 1)
) -> tuple[dict[str, Route], list[dict]]:
    """Routes to serve and the [[source]] tables that watch them.

    `share` (n, of) builds only every of-th source starting at the n-th, so that several
    hosts can each serve a part of the same set.
    """
    rng = random.Random(seed * 31 + share[0])
    routes: dict[str, Route] = {}
    sources: list[dict] = []
    for n in range(share[0], counts["feed"], share[1]):
        path = f"/f{n}/feed/"
        routes[path] = Route(feed(rng, f"{base}/f{n}"))
        sources.append({"key": f"feed-{n}", "kind": "feed", "url": base + path})
    for n in range(share[0], counts["sitemap"], share[1]):
        urls = []
        for a in range(5):
            path = f"/s{n}/artikkel-{a}"
            when = NOW - timedelta(days=a)
            routes[path] = Route(article(rng, _sentence(rng, 5), when), content_type=HTML)
            urls.append(f"<url><loc>{base}{path}</loc><lastmod>{when.date()}</lastmod></url>")
        routes[f"/s{n}/sitemap.xml"] = Route(
            (
                "<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
                + "".join(urls)
                + "</urlset>"
            ).encode(),
            content_type="application/xml",
        )
        sources.append(
            {"key": f"sitemap-{n}", "kind": "sitemap", "url": f"{base}/s{n}/sitemap.xml"}
        )
    for n in range(share[0], counts["index"], share[1]):
        links = []
        for a in range(5):
            path = f"/i{n}/aktuelt/{100 + a}/sak-{a}/"
            routes[path] = Route(
                article(rng, _sentence(rng, 5), NOW - timedelta(days=a)), content_type=HTML
            )
            links.append(f"<li><a href='{path}'>{_sentence(rng, 4)}</a></li>")
        routes[f"/i{n}/aktuelt/"] = Route(
            (
                f"<html><body><nav><a href='/'>Hjem</a></nav><main><ul>{''.join(links)}</ul>"
                "</main></body></html>"
            ).encode(),
            content_type=HTML,
        )
        sources.append(
            {
                "key": f"index-{n}",
                "kind": "index",
                "url": f"{base}/i{n}/aktuelt/",
                "options": {"link_pattern": r"/aktuelt/\d+/"},
            }
        )
    for n in range(share[0], counts["sections"], share[1]):
        routes[f"/g{n}/veileder"] = Route(guide(rng), content_type=HTML)
        sources.append({"key": f"sections-{n}", "kind": "sections", "url": f"{base}/g{n}/veileder"})
    return routes, sources


def sources_toml(sources: list[dict]) -> str:
    lines = ['[topics]\nvold = "Vold"\n']
    for s in sources:
        lines.append(
            f'[[source]]\nkey = "{s["key"]}"\nname = "{s["key"]}"\n'
            f'kind = "{s["kind"]}"\nurl = "{s["url"]}"\ntopics = ["vold"]'
        )
        if "options" in s:
            pattern = s["options"]["link_pattern"].replace("\\", "\\\\")
            lines.append(f'options = {{ link_pattern = "{pattern}" }}')
        lines.append("")
    return "\n".join(lines)
