"""Which language a page is shown in: `?lang=` (a link's or the switch's, remembered in a
cookie), then the subscriber's own choice on pages reached from their link, then the
remembered choice, then the browser's Accept-Language, then bokmål."""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.core.i18n import LANGUAGES, language_or_default, negotiate

COOKIE = "lang"
PARAM = "lang"
REMEMBER_SECONDS = 365 * 24 * 3600
# Each language named in itself, as the switch shows it.
NAMES = {"nb": "Bokmål", "nn": "Nynorsk", "en": "English"}


def _asked(query_string: bytes) -> str | None:
    try:
        pairs = parse_qsl(query_string.decode("latin-1")[:4000], max_num_fields=50)
    except ValueError:  # more fields than that: not a link of ours
        return None
    for name, value in pairs:
        if name == PARAM and value in LANGUAGES:
            return value
    return None


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
        remembered = None
        cookie_header = headers.get(b"cookie", b"").decode("latin-1")
        if cookie_header:
            cookies: SimpleCookie = SimpleCookie()
            try:
                cookies.load(cookie_header)
            except Exception:
                cookies = SimpleCookie()
            if COOKIE in cookies and cookies[COOKIE].value in LANGUAGES:
                remembered = cookies[COOKIE].value
        header = negotiate(headers.get(b"accept-language", b"").decode("latin-1"))
        state = scope.setdefault("state", {})
        state["language"] = asked or remembered or header or language_or_default(None)
        state["language_asked"] = asked is not None

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
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
    try:
        pairs = parse_qsl(request.url.query[:4000], keep_blank_values=True, max_num_fields=50)
    except ValueError:
        pairs = []
    kept = [(k, v) for k, v in pairs if k != PARAM]
    links = []
    for code in LANGUAGES:
        query = urlencode([*kept, (PARAM, code)])
        links.append(
            {
                "code": code,
                "name": NAMES[code],
                "url": f"{request.url.path}?{query}",
                "current": code == current,
            }
        )
    return links
