"""How the web answers an expected error: the one place where a `DigestError` becomes a page.

Routes and their dependencies raise; `error_page` (registered in `digest.web.app` for
every `DigestError`) picks the page by the error's type and attributes, never its text.
The request's session has been rolled back by then, so nothing here reads the database.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from digest.core.db import DatabaseUnavailable
from digest.core.errors import DigestError
from digest.core.i18n import DEFAULT, N_, translate
from digest.web.admin.common import SignInNeeded, sign_in_url
from digest.web.common import page
from digest.web.forms import FormError
from digest.web.language import page_language
from subscribers.addresses import InvalidAddress
from subscribers.errors import SubscriberError
from subscribers.tokens import BadToken, ExpiredToken

log = logging.getLogger(__name__)

# What a form says by a field at fault, by the field an error names (in bokmål here,
# translated where shown: the errors themselves are the CLI's, in English).
FIELD_NOTES = {
    "email": N_("Skriv en gyldig e-postadresse, for eksempel navn@kommune.no."),
    "municipality": N_("Velg en kommune fra listen."),
    "role": N_("Velg en rolle fra listen."),
    "role_only": N_("Kryss av for «Bare det som er laget for min rolle», eller la være."),
    "frequency": N_("Velg hvor ofte du vil ha e-post."),
    "topic": N_("Velg temaer fra listen."),
    "language": N_("Velg et språk fra listen."),
    "name": N_("Navnet kan ha høyst 200 tegn."),
}
NOT_UNDERSTOOD = N_("Noe i skjemaet ble ikke forstått.")


class FormInvalid(DigestError):
    """A form with fields to correct: `template` is shown again, with `notes` by the fields
    at fault and `context` (plain values: the values sent, what to choose from)."""

    def __init__(
        self, template: str, notes: Mapping[str, str], context: Mapping[str, object]
    ) -> None:
        super().__init__(f"{template}: {', '.join(notes)}")
        self.template = template
        self.notes = dict(notes)
        self.context = dict(context)


def note(error: SubscriberError | InvalidAddress, language: str = DEFAULT) -> str:
    """What a form says by the field `error` names, in `language`."""
    return translate(language, FIELD_NOTES.get(error.field, NOT_UNDERSTOOD))


def expired_link(request: Request, language: str | None = None) -> HTMLResponse:
    """The page for a confirm link past its time (in `language`, else the request's)."""
    language = language or page_language(request)
    return page(
        request,
        "message.html",
        status=400,
        lang=language,
        title=translate(language, "Lenken er utløpt"),
        message=translate(
            language,
            "Bekreftelseslenker virker i sju dager. Meld deg på igjen, så sender vi en ny.",
        ),
        signup_link=True,
    )


async def unknown_address(request: Request, exc: Exception) -> Response:
    """An address with no page (404) or a method a page does not take (405), as a page in
    the reader's language rather than the framework's JSON; other HTTP errors as before."""
    assert isinstance(exc, StarletteHTTPException)  # the only kind it is registered for
    if exc.status_code not in (404, 405):
        return await http_exception_handler(request, exc)  # FastAPI's own, as before
    language = page_language(request)
    if exc.status_code == 404:
        title, message = (
            N_("Fant ikke siden"),
            N_("Adressen finnes ikke her. Sjekk at den er skrevet riktig, eller gå til forsiden."),
        )
    else:
        title, message = N_("Det går ikke her"), N_("Siden tar ikke imot en slik forespørsel.")
    answer = page(
        request,
        "message.html",
        status=exc.status_code,
        title=translate(language, title),
        message=translate(language, message),
        signup_link=True,
    )
    answer.headers.update(exc.headers or {})  # a 405's Allow
    return answer


def error_page(request: Request, exc: Exception) -> Response:
    """The page for an expected error (Starlette's handler signature, hence `Exception`)."""
    if isinstance(exc, SignInNeeded):
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303)
    # In the request's language: nothing here can know whose link it was.
    language = page_language(request)
    # On the editors' pages, with the menu of whoever is signed in.
    editor = getattr(request.state, "editor", None)
    staff = {"editor": editor, "tz": request.app.state.settings.tz} if editor else {}
    if isinstance(exc, FormInvalid):
        return page(
            request, exc.template, status=400, **{**exc.context, **staff, "errors": exc.notes}
        )
    if isinstance(exc, FormError) and editor is not None:
        return page(
            request,
            "admin/message.html",
            status=exc.status,
            title=translate(language, exc.title),
            message=translate(language, str(exc)),
            **staff,
        )
    if isinstance(exc, ExpiredToken):
        return expired_link(request)
    if isinstance(exc, BadToken):
        return page(request, "bad_link.html", status=400)
    if isinstance(exc, FormError):
        return page(
            request,
            "message.html",
            status=exc.status,
            title=translate(language, exc.title),
            message=translate(language, str(exc)),
        )
    if isinstance(exc, SubscriberError | InvalidAddress):
        return page(
            request,
            "message.html",
            status=400,
            title=translate(language, "Noe gikk galt"),
            message=translate(language, NOT_UNDERSTOOD),
        )
    if not isinstance(exc, DatabaseUnavailable):
        # Any other error reaching a route is a bug of ours: a 500 with its traceback,
        # not an outage page that would hide it.
        raise exc
    # The database is out of reach: the operator's to fix.
    log.error("%s: %s", type(exc).__name__, exc)
    return page(
        request,
        "message.html",
        status=503,
        title=translate(language, "Tjenesten er ikke tilgjengelig"),
        message=translate(language, "Prøv igjen om litt."),
    )
