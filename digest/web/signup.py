"""Signing up (with double opt-in), confirming, and asking for one's link again.

The answer to a sign-up or a link request is the same whether or not the address is
known, and both are limited per client here and per address in `digest.delivery.notices`.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from digest.core.db import get_sessionmaker
from digest.core.i18n import translate
from digest.delivery.notices import queue_notice, send_notices
from digest.mail.pool import send_pool
from digest.web.common import (
    DbSession,
    choice_lists,
    frequency_labels,
    page,
    role_labels,
    topics,
)
from digest.web.errors import FormInvalid, expired_link, note
from digest.web.forms import Form, LimitedForm, chosen_from, field, posted_form, role_only_answer
from digest.web.language import page_language
from subscribers.addresses import InvalidAddress, normalise_email
from subscribers.choices import Choices, requested_choices
from subscribers.errors import SubscriberError
from subscribers.models import LANGUAGE_LABELS, Frequency, Language, Role, Subscriber
from subscribers.municipalities import find_municipality
from subscribers.signups import (
    Confirmation,
    ToMail,
    confirm,
    find_request,
    is_expired,
    link_request,
    sign_up,
)
from subscribers.tokens import read_token

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def signup_page(request: Request, session: DbSession) -> HTMLResponse:
    lang = page_language(request)
    # The mails' language starts as the page's: who reads the page in English wants English.
    values = {"frequency": Frequency.DAILY, "language": Language(lang), "role_only": True}
    return page(request, "signup.html", values=values, errors={}, **choice_lists(session, lang))


@router.post("/abonner", response_class=HTMLResponse)
def signup_post(
    request: Request, form: LimitedForm, session: DbSession, tasks: BackgroundTasks
) -> HTMLResponse:
    lang = page_language(request)
    email, chosen = _checked(form, session, lang)
    _mail(request, session, tasks, sign_up(session, email, chosen))
    return page(
        request,
        "message.html",
        title=translate(lang, "Sjekk e-posten din"),
        message=translate(
            lang,
            "Vi har sendt en e-post til adressen du oppga. Følg lenken i den for å bekrefte "
            "abonnementet. Lenken virker i sju dager.",
        ),
    )


def _checked(form: Form, session: Session, lang: str) -> tuple[str, Choices]:
    """The address and choices of a sign-up, or FormInvalid with a note by each field at
    fault (in `lang`) and every value sent shown again."""
    notes: dict[str, str] = {}
    email, chosen = "", None
    try:
        email = normalise_email(field(form, "email", 400))
    except InvalidAddress as exc:
        notes[exc.field] = note(exc, lang)
    try:
        chosen = chosen_from(form, session)
    except SubscriberError as exc:
        notes[exc.field or "form"] = note(exc, lang)
    if notes or chosen is None:
        values: dict[str, object] = {
            k: v[0] for k, v in form.items() if k not in ("topic", "role_only") and v
        }
        values["topic"] = form.get("topic", [])
        values["role_only"] = _role_only_shown(form)
        chosen_topics = form.get("topic", [])
        context = {"values": values, "lang": lang, **choice_lists(session, lang, chosen_topics)}
        raise FormInvalid("signup.html", notes, context)
    return email, chosen


def _role_only_shown(form: Form) -> bool:
    """The role box as a form sent it, to show again: ticked unless it said no (an answer
    the form cannot read shows as not ticked, with the note beside it)."""
    try:
        answer = role_only_answer(form)
    except SubscriberError:
        return False
    return answer is None or answer


def _mail(request: Request, session: Session, tasks: BackgroundTasks, to: ToMail | None) -> None:
    """Queue the notice `to` names, sent after the response (and so after the commit)."""
    notice = queue_notice(session, to.subscriber, to.kind, to.request) if to else None
    if notice is None:
        # Nobody to mail, or the address has had its share of mail this hour: keep nothing.
        session.rollback()
        return
    settings = request.app.state.settings
    tasks.add_task(
        send_notices,
        get_sessionmaker(settings.database_url),
        send_pool(settings),
        settings,
        [notice.id],
    )


def _confirm_nonce(request: Request, token: str) -> str:
    return read_token(request.app.state.settings.secret_key, "confirm", token)


@router.get("/bekreft/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str, session: DbSession) -> HTMLResponse:
    # A GET changes nothing: mail scanners open links, people press buttons.
    asked = find_request(session, _confirm_nonce(request, token))
    if asked is None:
        return _answer(request, Confirmation.USED, "", page_language(request))
    chosen = requested_choices(asked)
    # In the language the sign-up chose, unless the address asks for another.
    lang = page_language(request, chosen.language)
    if is_expired(asked):
        return expired_link(request, lang)
    if chosen.role_only is None:  # not answered: confirming keeps what the person has
        chosen = replace(
            chosen, role_only=session.get_one(Subscriber, asked.subscriber_id).role_only
        )
    # Show what confirming applies: it may be someone else's sign-up for this address.
    return page(request, "confirm.html", lang=lang, summary=_summary(session, chosen, lang))


def _summary(session: Session, chosen: Choices, lang: str) -> list[tuple[str, str]]:
    """The choices a confirmation applies, as the page shows them (label, value) in `lang`."""
    topic_labels = {t.key: t.label for t in topics(session)}
    municipality = find_municipality(chosen.municipality) if chosen.municipality else None
    role = role_labels(lang)[Role(chosen.role)] if chosen.role in tuple(Role) else ""
    yes, no = translate(lang, "Ja"), translate(lang, "Nei")
    rows = [
        (translate(lang, "Navn"), chosen.name),
        (translate(lang, "Kommune"), municipality.name if municipality else ""),
        (translate(lang, "Rolle"), role),
        (
            translate(lang, "Bare det som er laget for min rolle"),
            (yes if chosen.role_only else no) if role else "",
        ),
        (translate(lang, "Hvor ofte"), frequency_labels(lang)[chosen.frequency]),
        (
            translate(lang, "Temaer"),
            ", ".join(topic_labels.get(t, t) for t in chosen.topics) or translate(lang, "Alle"),
        ),
        (translate(lang, "Språk"), LANGUAGE_LABELS[chosen.language]),
    ]
    return [(label, value) for label, value in rows if value]


@router.post("/bekreft/{token}", response_class=HTMLResponse, dependencies=[Depends(posted_form)])
def confirm_post(request: Request, token: str, session: DbSession) -> HTMLResponse:
    nonce = _confirm_nonce(request, token)
    outcome, subscriber = confirm(session, request.app.state.settings.secret_key, nonce)
    # Confirmed, the subscriber's language is the one the sign-up chose.
    lang = page_language(request, subscriber.language if subscriber else None)
    return _answer(request, outcome, subscriber.email if subscriber else "", lang)


def _answer(request: Request, outcome: Confirmation, email: str, lang: str) -> HTMLResponse:
    if outcome == Confirmation.EXPIRED:
        return expired_link(request, lang)
    if outcome == Confirmation.CONFIRMED:
        return page(
            request,
            "message.html",
            lang=lang,
            title=translate(lang, "Abonnementet er bekreftet"),
            message=translate(
                lang,
                "Takk! %(email)s får nå oversikter fra Veiledervarsel. Hver e-post har en "
                "lenke til innstillingene dine.",
            )
            % {"email": email},
        )
    return page(
        request,
        "message.html",
        status=400,
        lang=lang,
        title=translate(lang, "Lenken er allerede brukt"),
        message=translate(
            lang,
            "Denne lenken er brukt opp. Har du alt bekreftet, trenger du ikke gjøre noe mer: "
            "hver e-post har en lenke til innstillingene. Ellers kan du melde deg på igjen.",
        ),
        signup_link=True,
    )


@router.get("/lenke", response_class=HTMLResponse)
def link_page(request: Request) -> HTMLResponse:
    return page(request, "link.html", errors={}, email="")


@router.post("/lenke", response_class=HTMLResponse)
def link_post(
    request: Request, form: LimitedForm, session: DbSession, tasks: BackgroundTasks
) -> HTMLResponse:
    lang = page_language(request)
    raw = field(form, "email", 400)
    try:
        email = normalise_email(raw)
    except InvalidAddress:
        notes = {"email": translate(lang, "Skriv en gyldig e-postadresse.")}
        raise FormInvalid("link.html", notes, {"email": raw, "lang": lang}) from None
    _mail(request, session, tasks, link_request(session, email))
    # The same words whether or not we know the address.
    return page(
        request,
        "message.html",
        title=translate(lang, "Sjekk e-posten din"),
        message=translate(lang, "Hvis adressen abonnerer hos oss, har vi sendt en lenke til den."),
    )
