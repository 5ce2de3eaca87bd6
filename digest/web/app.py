"""The FastAPI application: health, and the pages reached from links in mails."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from digest.paths import templates_dir
from digest.settings import Settings, load_settings
from digest.web import health, metrics, preferences, signup
from digest.web.common import RateLimiter

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(title="Veiledervarsel", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    # Sign-ups and link requests per client: 10 in 10 minutes, counted in this process.
    app.state.limiter = RateLimiter(limit=10, window=600)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(preferences.router)
    app.include_router(signup.router)
    app.mount("/static", StaticFiles(directory=templates_dir() / "web" / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app
