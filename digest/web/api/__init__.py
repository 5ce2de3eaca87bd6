"""The JSON API for scripts and a CMS, mounted at /api by `digest.web.app`:
announcements on an editor's behalf (`routes`), with per-editor tokens, `Idempotency-Key`
for creates (`idempotency`), JSON errors naming the field (`errors`), and its OpenAPI
schema at /api/openapi.json, shown as a page at /api/docs (`docs`).

It is an application of its own so that its schema and error answers are its own: the main
app keeps its docs off and answers errors with pages. The guards around the main app
(trusted host, security headers, HEAD) wrap it too, since they wrap everything mounted.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from digest import __version__
from digest.core.db import DatabaseUnavailable
from digest.core.i18n import N_
from digest.core.settings import Settings
from digest.delivery.announcements import AnnouncementError
from digest.web.api import docs, routes
from digest.web.api.errors import ApiError, api_error
from digest.web.api.limits import BodyLimit
from digest.web.common import page
from digest.web.language import page_language

DESCRIPTION = N_("""\
Kunngjøringer til toppen av de neste oversiktene, skrevet av et skript eller et
publiseringssystem (CMS) på vegne av en redaktør. Hver forespørsel har med
`Authorization: Bearer <nøkkel>`; en redaktør lager og trekker tilbake nøklene sine på
/redaksjon/nokler. Feil svares med JSON,
`{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`, der `loc` navngir feltet som
er feil (f.eks. `["body", "title"]`).
""")


def create_api(settings: Settings) -> FastAPI:
    api = FastAPI(
        title="Veiledervarsel API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    # A mounted application has its own state: the request's session reads settings here.
    api.state.settings = settings
    api.include_router(routes.router)
    for error in (ApiError, AnnouncementError, DatabaseUnavailable):
        api.add_exception_handler(error, api_error)
    api.add_middleware(BodyLimit)

    @api.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def documentation(request: Request) -> HTMLResponse:
        schema: dict[str, Any] = api.openapi()
        lang = page_language(request)
        info = schema.get("info", {})
        return page(
            request,
            "api/docs.html",
            lang=lang,
            info={**info, "description": docs.text_in(lang, info.get("description", ""))},
            operations=docs.operations(schema, lang),
            schemas=docs.schemas(schema, lang),
            openapi_url="/api/openapi.json",
            md=docs.markdown,
        )

    return api
