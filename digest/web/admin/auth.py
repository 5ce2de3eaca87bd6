"""Signing in and out of the editors' pages.

A wrong password and an unknown address get the same answer; failed tries are counted
per account and per client, and past the limit refused unread until the window passes.
A new session is made at each sign-in (never one the browser brought along).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from digest.core.i18n import N_, translate, translate_plural
from digest.editors import accounts, audit, signins
from digest.editors.accounts import SignInRefused
from digest.web.admin.common import (
    PREFIX,
    SignedIn,
    cookie_name,
    in_language,
    safe_next,
    see_other,
    session_token,
)
from digest.web.common import DbSession, page
from digest.web.forms import PostedForm, client_key, field
from digest.web.language import page_language

router = APIRouter(prefix=PREFIX)

SIGNED_OUT = {"ute": N_("Du er logget ut."), "utlopt": N_("Økten var utløpt. Logg inn igjen.")}


@router.get("/logg-inn")
def sign_in_form(request: Request, neste: str = "", melding: str = "") -> Response:
    return page(
        request,
        "admin/sign_in.html",
        values={"email": ""},
        next_path=safe_next(neste),
        flash=in_language(page_language(request), SIGNED_OUT.get(melding, "")),
    )


@router.post("/logg-inn")
def sign_in(request: Request, session: DbSession, form: PostedForm) -> Response:
    settings = request.app.state.settings
    email = field(form, "email", 254)
    password = field(form, "password", accounts.MAX_PASSWORD + 1)
    next_path = safe_next(field(form, "neste", 500))
    client = client_key(request)
    language = page_language(request)
    # Counted, and committed, before anything is checked: tries sent in parallel each see
    # those before them, so a burst gets no more password checks than the limit.
    attempt = signins.count_attempt(session, settings, email, client)
    session.commit()
    if signins.over_limit(session, settings, email, client):
        signins.log_failure(email, client)
        minutes = settings.sign_in_window_minutes
        wait = translate_plural(
            language,
            "For mange mislykkede forsøk. Vent %(minutes)s minutt og prøv igjen.",
            "For mange mislykkede forsøk. Vent %(minutes)s minutter og prøv igjen.",
            minutes,
        )
        return _refused(request, email, next_path, 429, wait % {"minutes": minutes})
    try:
        editor = accounts.verify(session, email, password)
    except SignInRefused:
        signins.log_failure(email, client)
        wrong = translate(language, "Feil e-postadresse eller passord.")
        return _refused(request, email, next_path, 400, wrong)
    signins.forgive(session, attempt, editor.email)
    old = session_token(request)
    if old:
        signins.end_session(session, old)
    token = signins.start_session(session, editor)
    audit.record(session, editor, "sign_in", "editor", editor.id)
    response = see_other(next_path)
    name = cookie_name(settings.base_url)
    response.set_cookie(
        name,
        token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=name.startswith("__Host-"),
    )
    return response


def _refused(request: Request, email: str, next_path: str, status: int, message: str) -> Response:
    # Returned, not raised: the request's unit of work commits the counted failure.
    return page(
        request,
        "admin/sign_in.html",
        status=status,
        values={"email": email},
        next_path=next_path,
        error_message=message,
    )


@router.post("/logg-ut")
def sign_out(request: Request, session: DbSession, editor: SignedIn, form: PostedForm) -> Response:
    signins.end_session(session, session_token(request))
    audit.record(session, editor, "sign_out", "editor", editor.id)
    response = see_other(f"{PREFIX}/logg-inn", "ute")
    name = cookie_name(request.app.state.settings.base_url)
    response.delete_cookie(name, path="/", secure=name.startswith("__Host-"), httponly=True)
    return response


@router.get("")
def home(editor: SignedIn) -> Response:
    return see_other(f"{PREFIX}/kunngjoringer")
