"""Guards around the whole web app (plain ASGI middleware): only the host of
DIGEST_BASE_URL is served, HEAD answers wherever GET does, a trailing-slash redirect points
into DIGEST_BASE_URL, and every response carries the security headers.

`/healthz` and `/metrics` are exempt from the host check: load balancers and scrapers
probe them by address (Host: 10.0.0.7), and they build no URL and show nothing personal.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest.core.i18n import DEFAULT, negotiate, translate

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HOST_EXEMPT = frozenset({"/healthz", "/metrics"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def allowed_hosts(base_url: str) -> frozenset[str]:
    """The base URL's host; all loopback names when it is one (a local run), else no other."""
    host = (urlsplit(base_url).hostname or "").rstrip(".")
    return LOOPBACK if host in LOOPBACK else frozenset({host})


def host_name(header: str) -> str | None:
    """The name in a Host header without its port, or None when it is not a plain host."""
    match = _HOST_HEADER.fullmatch(header)
    return match[1].strip("[]").rstrip(".").lower() if match else None


class TrustedHost:
    """Answer 400 to a request for any host but ours (no URL is ever built from Host, and
    this also shuts out DNS rebinding)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in HOST_EXEMPT
            or host_name(Headers(scope=scope).get("host", "")) in self.hosts
        ):
            await self.app(scope, receive, send)
        else:
            # Before the page's language is chosen: the browser's, by its header.
            language = negotiate(Headers(scope=scope).get("accept-language", "")) or DEFAULT
            refusal = translate(language, "Ukjent vertsnavn.")
            await PlainTextResponse(refusal, status_code=400)(scope, receive, send)


class HeadAsGet:
    """HEAD is GET without the body (RFC 9110), for every route and every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class SlashRedirect:
    """`/lenke/` -> `<base URL>/lenke` when only the path without the slash is a route.

    Starlette's own redirect builds the URL from the Host header, so it is switched off
    (`redirect_slashes=False`) and this one is used instead.
    """

    def __init__(self, app: ASGIApp, base_url: str, router: Router) -> None:
        self.app = app
        self.base_url = base_url.rstrip("/")
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path.endswith("/") and path != "/":
            target = path.rstrip("/") or "/"
            if not self._matches(scope, mounts=True) and self._matches(
                {**scope, "path": target}, mounts=False
            ):
                location = self.base_url + quote(target)
                query = scope.get("query_string", b"").decode("latin-1")
                if query:
                    location += "?" + quote(query, safe="=&;%+/?:@!$'()*,~")
                await RedirectResponse(location, status_code=307)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _matches(self, scope: Scope, *, mounts: bool) -> bool:
        return any(
            route.matches(scope)[0] is not Match.NONE
            for route in self.router.routes
            if mounts or not isinstance(route, Mount)
        )


class SecurityHeaders:
    """CSP, framing, sniffing and referrer headers on every response (each unless the
    response sets its own), and `no-store` unless the response says otherwise or is a
    static file: pages show personal data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A response whose own CSP names its frame ancestors (the embeddable
                # snippet) decides its framing; X-Frame-Options would forbid it anyway.
                framing = "frame-ancestors" in headers.get("content-security-policy", "")
                for name, value in SECURITY_HEADERS.items():
                    if not (framing and name == "X-Frame-Options"):
                        headers.setdefault(name, value)
                if not static:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)
