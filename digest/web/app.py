"""The FastAPI application: health and metrics, the pages reached from links in mails, the
editors' pages under /redaksjon and their JSON API under /api."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from digest.core.errors import DigestError
from digest.core.paths import templates_dir
from digest.core.settings import Settings, load_settings
from digest.web import health, metrics, preferences, signup
from digest.web.admin import auth, tokens
from digest.web.api import create_api
from digest.web.errors import error_page
from digest.web.guards import (
    HeadAsGet,
    SecurityHeaders,
    SlashRedirect,
    TrustedHost,
    allowed_hosts,
)
from digest.web.ratelimit import build_limiter


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        title="Veiledervarsel",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,  # SlashRedirect does it from the base URL, not from Host
    )
    app.state.settings = settings
    # Sign-ups and link requests per client: 10 in 10 minutes, shared through Redis when
    # the broker is Redis, else counted in this process.
    app.state.limiter = build_limiter(settings.broker_url, limit=10, window=600)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(preferences.router)
    app.include_router(signup.router)
    app.include_router(auth.router)
    app.include_router(tokens.router)
    # The one place where an expected error becomes a page (see digest.web.errors).
    app.add_exception_handler(DigestError, error_page)
    app.mount("/api", create_api(settings))
    app.mount("/static", StaticFiles(directory=templates_dir() / "web" / "static"), name="static")
    # Added innermost first: a request meets SecurityHeaders, HeadAsGet, TrustedHost, then
    # SlashRedirect, so even the 400 for a foreign host carries the headers.
    app.add_middleware(SlashRedirect, base_url=settings.base_url, router=app.router)
    app.add_middleware(TrustedHost, hosts=allowed_hosts(settings.base_url))
    app.add_middleware(HeadAsGet)
    app.add_middleware(SecurityHeaders)
    return app
