"""Posted forms: read within a size limit, checked for CSRF and, where asked, rate-limited.

Routes take a form as a dependency (`PostedForm`, `LimitedForm`); a form that cannot be
used raises `FormError` before the route runs, and `digest.web.errors` answers it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from digest.core.errors import DigestError
from digest.core.i18n import N_
from digest.core.topics import topic_labels
from digest.web import csrf as csrf_tokens
from digest.web import ratelimit
from subscribers.choices import Choices, choices, parse_yes_no

MAX_FORM_BYTES = 20_000

Form = dict[str, list[str]]


class FormError(DigestError):
    """A form that cannot be used; `status` is the HTTP status to answer with, `title` and
    the message what the page says (in bokmål, marked for the catalogues: the page
    translates them, see `digest.web.errors`)."""

    title = N_("Noe gikk galt")

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(FormError):
    """Too many sign-ups or link requests from one client in the window."""

    title = N_("For mange forsøk")

    def __init__(self) -> None:
        super().__init__(429, N_("Vent litt før du prøver igjen."))


async def read_body(request: Request, limit: int, too_large: FormError | None = None) -> bytes:
    """The request body, refused past `limit` bytes, declared or as it streams (with
    `too_large`, or a plain 413)."""
    refusal = too_large or FormError(413, N_("Skjemaet er for stort."))
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise refusal
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise refusal
    return bytes(body)


def check_csrf(request: Request, sent: str) -> None:
    """Refuse a form whose CSRF field does not belong to this client's cookie."""
    settings = request.app.state.settings
    secret = request.cookies.get(csrf_tokens.cookie_name(settings.base_url), "")
    if not csrf_tokens.is_valid(settings.secret_key, secret, sent):
        raise FormError(403, N_("Skjemaet var utløpt. Last siden på nytt og prøv igjen."))


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> Form:
    """The urlencoded form, read within `limit` bytes and checked for CSRF."""
    body = await read_body(request, limit)
    form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    check_csrf(request, (form.get("csrf") or [""])[0])
    return form


async def posted_form(request: Request) -> Form:
    """The urlencoded form, read within the usual size limit and checked for CSRF."""
    return await read_form(request)


PostedForm = Annotated[Form, Depends(posted_form)]


async def limited_form(request: Request, form: PostedForm) -> Form:
    """A posted form from a client still within its limit of sign-ups and link requests."""
    # A shared limiter asks Redis: not on the event loop.
    if not await run_in_threadpool(request.app.state.limiter.allow, client_key(request)):
        raise RateLimited()
    return form


LimitedForm = Annotated[Form, Depends(limited_form)]


def field(form: Form, name: str, limit: int = 300) -> str:
    return (form.get(name) or [""])[0][:limit]


def role_only_answer(form: Form) -> bool | None:
    """The form's «only what is made for my role»: None when it does not ask. The page
    sends a hidden «0» before the box, so the last value is the answer (a box not ticked
    sends nothing at all)."""
    answers = form.get("role_only")
    return parse_yes_no(answers[-1][:10], "role_only") if answers else None


def chosen_from(form: Form, session: Session) -> Choices:
    """The choices a sign-up or settings form sends; SubscriberError names the field at fault."""
    return choices(
        name=field(form, "name", 250),
        municipality=field(form, "municipality", 10),
        role=field(form, "role", 30),
        role_only=role_only_answer(form),
        frequency=field(form, "frequency", 20) or "daily",
        topics=[t[:40] for t in form.get("topic", [])][:50],
        language=field(form, "language", 5),
        known_topics=set(topic_labels(session)),
    )


def client_key(request: Request) -> str:
    return ratelimit.client_key(request.client.host if request.client else None)
