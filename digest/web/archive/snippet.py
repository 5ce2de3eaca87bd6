"""The embeddable list of a topic's latest changes: a small page without script that
another site may put in an iframe (`frame-ancestors *`), or, with `?format=fragment` (or
`/innebygd/tema/<topic>.html`), only its `<ul>`, for a server-side include or a fetch from
any origin. Cached and conditional like the feeds."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import datetime, tzinfo
from urllib.parse import urlencode

from babel.dates import format_date
from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from digest.core import i18n
from digest.core.archive_links import PREFIX
from digest.core.i18n import translate
from digest.core.topics import topic_labels
from digest.web.archive import queries
from digest.web.archive.conditional import cached_response
from digest.web.archive.feeds import asked_language, feed_language, latest_time
from digest.web.archive.text import shown_text
from digest.web.common import DbSession, templates

router = APIRouter()

DEFAULT_COUNT, MAX_COUNT = 10, 50
HTML = "text/html; charset=utf-8"
_DAY = {"nb": "d. MMMM y", "nn": "d. MMMM y", "en": "d MMMM y"}  # «2. desember 2024»
# The page's only style, allowed by its hash: no other style, script or image may load.
STYLE = (
    "body{margin:0;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.4;"
    "color:#1f1f1f;background:#fff}"
    "main{padding:8px 12px}"
    "h1{font-size:1.1rem;margin:0 0 8px 0}"
    "ul{list-style:none;margin:0;padding:0}"
    "li{margin:0 0 10px 0}"
    "a{color:#1f4e79}"
    "a:focus{outline:3px solid #c58a00;outline-offset:2px}"
    ".meta{display:block;color:#555;font-size:0.85rem}"
    ".more{margin:8px 0 0 0;font-size:0.9rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; frame-ancestors *; "
    "base-uri 'none'; form-action 'none'"
)


def _count(request: Request) -> int:
    raw = request.query_params.get("antall", "")
    if raw.isascii() and raw.isdigit() and len(raw) <= 3:
        return min(max(int(raw), 1), MAX_COUNT)
    return DEFAULT_COUNT


def _day(language: str, tz: tzinfo) -> Callable[[datetime], str]:
    """The snippet's dates, with the year: a list embedded for years shows old ones too."""
    return lambda moment: format_date(
        moment.astimezone(tz), _DAY[language], locale=i18n.BABEL_LOCALE[language]
    )


def _not_found(request: Request, language: str, fragment: bool) -> Response:
    """The unknown topic's answer, framed as the snippet is, in the asked language."""
    message = translate(language, "Fant ikke dette temaet.")
    if fragment:
        body = str(Markup('<p class="veiledervarsel">%s</p>\n') % message)
    else:
        context = {"lang": language, "heading": message, "missing": True, "style": Markup(STYLE)}
        context["archive_url"] = _archive_url(request, "")
        body = templates.env.get_template("archive/snippet.html").render(context)
    headers = {"Content-Security-Policy": POLICY}
    return Response(body, status_code=404, media_type=HTML, headers=headers)


def _archive_url(request: Request, topic: str) -> str:
    base = request.app.state.settings.base_url.rstrip("/")
    pairs = [("tema", topic)] if topic else []
    asked = asked_language(request)
    if asked:
        pairs.append(("lang", asked))
    return f"{base}{PREFIX}?{urlencode(pairs)}" if pairs else f"{base}{PREFIX}"


@router.get("/innebygd/tema/{topic}")
def topic_snippet(topic: str, request: Request, session: DbSession) -> Response:
    language = feed_language(request)
    fragment = request.query_params.get("format") == "fragment" or topic.endswith(".html")
    topic = topic.removesuffix(".html")
    labels = topic_labels(session)
    if topic not in labels:
        return _not_found(request, language, fragment)
    sources = queries.source_ids(session, [topic])
    changes = queries.latest_changes(session, sources, _count(request))
    label = shown_text(labels[topic])
    context = {
        "lang": language,
        "day": _day(language, request.app.state.settings.tz),
        "changes": changes,
        "heading": translate(language, "Nytt fra veilederne: %(topic)s") % {"topic": label},
        "archive_url": _archive_url(request, topic),
        "style": Markup(STYLE),
    }
    name = "archive/fragment.html" if fragment else "archive/snippet.html"
    body = templates.env.get_template(name).render(context).encode()
    newest = latest_time(changes, queries.last_edited(session, sources))
    return cached_response(
        request.headers, body, HTML, newest, extra={"Content-Security-Policy": POLICY}
    )
