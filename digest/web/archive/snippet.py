"""The embeddable list of a topic's latest changes: a small page without script that
another site may put in an iframe (`frame-ancestors *`), or, with `?format=fragment` (or
`/innebygd/tema/<topic>.html`), only its `<ul>`, for a server-side include or a fetch from
any origin. Cached and conditional like the feeds."""

from __future__ import annotations

import base64
import hashlib

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import Response

from digest.core.archive_links import PREFIX
from digest.core.i18n import translate
from digest.core.topics import topic_labels
from digest.web.archive import queries
from digest.web.archive.conditional import cached_response
from digest.web.archive.feeds import feed_language
from digest.web.common import DbSession, templates

router = APIRouter()

DEFAULT_COUNT, MAX_COUNT = 10, 50
HTML = "text/html; charset=utf-8"
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


@router.get("/innebygd/tema/{topic}")
def topic_snippet(topic: str, request: Request, session: DbSession) -> Response:
    language = feed_language(request)
    fragment = request.query_params.get("format") == "fragment" or topic.endswith(".html")
    topic = topic.removesuffix(".html")
    labels = topic_labels(session)
    if topic not in labels:
        return Response(
            translate(language, "Fant ikke dette temaet."), status_code=404, media_type=HTML
        )
    changes = queries.latest_changes(session, queries.source_ids(session, [topic]), _count(request))
    base = request.app.state.settings.base_url.rstrip("/")
    context = {
        "lang": language,
        "tz": request.app.state.settings.tz,
        "changes": changes,
        "heading": translate(language, "Nytt fra veilederne: %(topic)s") % {"topic": labels[topic]},
        "archive_url": f"{base}{PREFIX}?tema={topic}",
        "style": Markup(STYLE),
    }
    name = "archive/fragment.html" if fragment else "archive/snippet.html"
    body = templates.env.get_template(name).render(context).encode()
    newest = changes[0].released_at if changes else None
    return cached_response(
        request.headers, body, HTML, newest, extra={"Content-Security-Policy": POLICY}
    )
