"""The FastAPI application: health and metrics, the pages reached from links in mails, the
editors' pages under /redaksjon and their JSON API under /api."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from digest.core.errors import DigestError
from digest.core.paths import templates_dir
from digest.core.settings import Settings, load_settings
from digest.web import health, metrics, preferences, signup
from digest.web.admin import announcements, audit, auth, changes, preview, runs, sources, tokens
from digest.web.admin import editors as admin_editors
from digest.web.admin import subscribers as admin_subscribers
from digest.web.api import create_api
from digest.web.archive import router as archive_router
from digest.web.errors import error_page, unknown_address
from digest.web.guards import (
    HeadAsGet,
    SecurityHeaders,
    SlashRedirect,
    TrustedHost,
    allowed_hosts,
)
from digest.web.jobs import Jobs
from digest.web.language import PageLanguage
from digest.web.ratelimit import build_limiter


def create_app(settings: Settings | None = None, jobs: Jobs | None = None) -> FastAPI:
    """The app on `settings`; `jobs` hands «check now» and «retry failed» to the workers
    (None: the app does that work itself, after the response; see digest.web.jobs)."""
    settings = settings or load_settings()
    app = FastAPI(
        title="Veiledervarsel",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,  # SlashRedirect does it from the base URL, not from Host
    )
    app.state.settings = settings
    app.state.jobs = jobs
    # Sign-ups and link requests per client: 10 in 10 minutes, shared through Redis when
    # the broker is Redis, else counted in this process.
    app.state.limiter = build_limiter(settings.broker_url, limit=10, window=600)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(preferences.router)
    app.include_router(signup.router)
    app.include_router(archive_router)
    app.include_router(auth.router)
    app.include_router(announcements.router)
    app.include_router(admin_subscribers.router)
    app.include_router(admin_editors.router)
    app.include_router(changes.router)
    app.include_router(preview.router)
    app.include_router(sources.router)
    app.include_router(runs.router)
    app.include_router(audit.router)
    app.include_router(tokens.router)
    # The one place where an expected error becomes a page (see digest.web.errors).
    app.add_exception_handler(DigestError, error_page)
    # An address with no page: a page in the reader's language, not the framework's JSON.
    app.add_exception_handler(StarletteHTTPException, unknown_address)
    # The JSON API is an application of its own (JSON errors, its OpenAPI at /api/docs),
    # inside the same guards.
    app.mount("/api", create_api(settings))
    app.mount("/static", StaticFiles(directory=templates_dir() / "web" / "static"), name="static")
    # Added innermost first: a request meets SecurityHeaders, HeadAsGet, TrustedHost,
    # SlashRedirect, then PageLanguage, so even the 400 for a foreign host carries the headers.
    app.add_middleware(PageLanguage)
    app.add_middleware(SlashRedirect, base_url=settings.base_url, router=app.router)
    app.add_middleware(TrustedHost, hosts=allowed_hosts(settings.base_url))
    app.add_middleware(HeadAsGet)
    app.add_middleware(SecurityHeaders)
    return app
