"""Which language a page is shown in: `?lang=` (a link's or the switch's, remembered in a
cookie), then the subscriber's own choice on pages reached from their link, then the
remembered choice, then the browser's Accept-Language, then bokmål."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.core.i18n import DEFAULT, LANGUAGES, language_or_default, negotiate
from subscribers.models import LANGUAGE_LABELS, Language

COOKIE = "lang"
PARAM = "lang"
REMEMBER_SECONDS = 365 * 24 * 3600


# How much of a query the language and the switch read: a long query's first fields count,
# the rest is not read (and not kept by the switch's links).
_QUERY_CHARS, _QUERY_FIELDS = 4000, 50


def _pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query[:_QUERY_CHARS], keep_blank_values=True)[:_QUERY_FIELDS]


def _asked(query_string: bytes) -> str | None:
    """The first `lang=` in the query that names one of the languages."""
    for name, value in _pairs(query_string.decode("latin-1")):
        if name == PARAM and value in LANGUAGES:
            return value
    return None


def _for_one_reader(headers: MutableHeaders) -> bool:
    """A page a browser shows (HTML, not for shared caches): the only answers that depend
    on the reader's language cookie or header. Feeds and the embeddable list choose their
    language by address only, and may be cached for everyone."""
    return headers.get("content-type", "").startswith("text/html") and "public" not in (
        headers.get("cache-control", "")
    )


class PageLanguage:
    """Sets `request.state.language` (and `.language_asked`: whether `?lang=` chose it);
    a `?lang=` choice is remembered in a cookie for a year."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = _asked(scope.get("query_string", b""))
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        # Starlette's lenient parser, as for the other cookies: a neighbour cookie that
        # the standard library cannot read does not lose this one.
        cookie = cookie_parser(headers.get(b"cookie", b"").decode("latin-1")).get(COOKIE)
        remembered = cookie if cookie in LANGUAGES else None
        state = scope.setdefault("state", {})
        # The header is read only when neither the address nor the cookie decided.
        state["language"] = (
            asked
            or remembered
            or negotiate(headers.get(b"accept-language", b"").decode("latin-1"))
            or DEFAULT
        )
        state["language_asked"] = asked is not None

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                if not _for_one_reader(out):
                    await send(message)
                    return
                out.add_vary_header("Accept-Language")
                out.add_vary_header("Cookie")
                if asked is not None and asked != remembered:
                    out.append(
                        "set-cookie",
                        f"{COOKIE}={asked}; Path=/; Max-Age={REMEMBER_SECONDS}; SameSite=Lax",
                    )
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def page_language(request: Request, subscriber_language: str | None = None) -> str:
    """The language of this request's page: a subscriber's own choice (on the pages their
    link leads to) comes after a `?lang=` in the address, before the rest."""
    state = request.state
    if subscriber_language in LANGUAGES and not getattr(state, "language_asked", False):
        return str(subscriber_language)
    return language_or_default(getattr(state, "language", None))


def switch_links(request: Request, current: str) -> list[dict[str, object]]:
    """The language switch: this address in each language (its other parameters kept)."""
    kept = [(k, v) for k, v in _pairs(request.url.query) if k != PARAM]
    links = []
    for code in LANGUAGES:
        query = urlencode([*kept, (PARAM, code)])
        links.append(
            {
                "code": code,
                "name": LANGUAGE_LABELS[Language(code)],
                "url": f"{request.url.path}?{query}",
                "current": code == current,
            }
        )
    return links
