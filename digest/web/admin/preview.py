"""Preview and test send: the next digest of a chosen subscriber, or of a sample profile,
exactly as it would be sent now (the period it covers, subject, HTML and text), what is
still waiting for approval, and «Send en test til meg».

A test goes to the signed-in editor's own address, its subject marked «[TEST] », and
records nothing about deliveries: no Delivery, no announcement receipt, no bounce
counting, no change to the subscriber. It is sent with no transaction open (the page's
reads are committed first), as every mail is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from digest.core.i18n import N_, translate
from digest.core.models import Editor
from digest.core.settings import Settings
from digest.delivery import review
from digest.delivery.previews import NextDigest, SampleProfile, message_for_test, next_digest
from digest.editors import audit
from digest.mail.mailer import SendError
from digest.mail.pool import send_pool
from digest.mail.wire import wire_of
from digest.web.admin.common import PREFIX, SignedIn, admin_page, in_language, see_other
from digest.web.common import DbSession, choice_lists
from digest.web.errors import note
from digest.web.forms import Form, PostedForm, chosen_from
from digest.web.forms import field as form_field
from digest.web.guards import SECURITY_HEADERS
from digest.web.language import page_language
from subscribers.addresses import InvalidAddress
from subscribers.base import utcnow
from subscribers.errors import SubscriberError
from subscribers.models import Status, Subscriber
from subscribers.people import find_by_email

router = APIRouter(prefix=PREFIX)

PAGE = f"{PREFIX}/forhandsvisning"
MESSAGES = {"sendt": N_("Testen er sendt til adressen din, merket [TEST] i emnefeltet.")}
NO_SUBSCRIBER = N_("Fant ingen abonnent med denne adressen.")
NOT_ACTIVE = N_("Abonnenten er ikke aktiv og får ingen sammendrag.")
# The mail in the frame (srcdoc, sandboxed: no scripts, no origin) takes this page's
# policy, and its styles are inline, as mail styles must be: this page alone allows
# inline styles, which our autoescaped templates give nobody else a way to write.
PREVIEW_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


@dataclass(slots=True)
class Chosen:
    """Whose digest to show, as the form said it (to show again and to post back)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # bokmål messages, by field
    subscriber: Subscriber | None = None
    profile: SampleProfile | None = None

    @property
    def query(self) -> str:
        """The values as the GET form sends them, to come back to the same preview."""
        pairs: list[tuple[str, str]] = []
        for name, value in self.values.items():
            pairs += [(name, v) for v in value] if isinstance(value, list) else [(name, value)]
        return urlencode([(k, v) for k, v in pairs if v])


def _chosen(session: DbSession, asked: Form) -> Chosen:
    """Whose preview the form asks for: a subscriber by address, or a sample profile."""
    email = form_field(asked, "email", 300).strip()
    if email:
        chosen = Chosen(values={"email": email})
        try:
            chosen.subscriber = find_by_email(session, email)
        except InvalidAddress:
            chosen.subscriber = None
        if chosen.subscriber is None:
            chosen.errors["email"] = NO_SUBSCRIBER
        return chosen
    if not form_field(asked, "profil", 5):
        return Chosen()
    values: dict[str, Any] = {
        "profil": "1",
        "role": form_field(asked, "role", 30),
        "topic": [t[:40] for t in asked.get("topic", [])][:50],
        "frequency": form_field(asked, "frequency", 20) or "daily",
        "language": form_field(asked, "language", 5),
        "municipality": form_field(asked, "municipality", 10),
    }
    chosen = Chosen(values=values)
    try:
        checked = chosen_from(asked, session)  # read as the sign-up form's choices are
    except SubscriberError as exc:
        chosen.errors[exc.field or "profil"] = note(exc)
        return chosen
    chosen.profile = SampleProfile(
        role=checked.role,
        topics=checked.topics,
        frequency=checked.frequency,
        language=checked.language,
        municipality=checked.municipality,
    )
    return chosen


def _form_of(request: Request) -> Form:
    form: Form = {}
    for name, value in request.query_params.multi_items():
        form.setdefault(name, []).append(value)
    return form


def _upcoming(
    session: DbSession, settings: Settings, chosen: Chosen
) -> tuple[NextDigest | None, str]:
    """The next digest of whoever was chosen, or why there is none to show."""
    if chosen.subscriber is not None:
        if chosen.subscriber.status != Status.ACTIVE:
            return None, NOT_ACTIVE
        return next_digest(session, settings, chosen.subscriber, utcnow()), ""
    if chosen.profile is not None:
        return next_digest(session, settings, chosen.profile, utcnow()), ""
    return None, ""


@router.get("/forhandsvisning")
def preview_page(request: Request, session: DbSession, editor: SignedIn) -> Response:
    settings = request.app.state.settings
    chosen = _chosen(session, _form_of(request))
    upcoming, why_none = _upcoming(session, settings, chosen)
    language = page_language(request)
    if chosen.subscriber is not None:
        # A look at one person's choices and mail: the log says who looked, and when.
        audit.record(session, editor, "preview_subscriber", "subscriber", chosen.subscriber.id)
    context: dict[str, Any] = {
        "upcoming": upcoming,
        "why_none": in_language(language, why_none),
    }
    response = admin_page(
        request,
        "preview.html",
        editor,
        status=400 if chosen.errors else 200,
        section="preview",
        messages=MESSAGES,
        chosen=chosen,
        values=chosen.values,
        errors={name: in_language(language, note) for name, note in chosen.errors.items()},
        waiting_count=review.waiting_count(session),
        **context,
        **choice_lists(session, language),
    )
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


@router.post("/forhandsvisning/test")
def send_test(request: Request, session: DbSession, editor: SignedIn, form: PostedForm) -> Response:
    settings = request.app.state.settings
    chosen = _chosen(session, form)
    upcoming, _ = _upcoming(session, settings, chosen)
    back = PAGE + (f"?{chosen.query}" if chosen.query else "")
    if chosen.errors or upcoming is None or upcoming.mail is None:
        return see_other(back)  # the page says what is wrong, or that nothing would go
    message = message_for_test(settings, upcoming, editor.email, utcnow())
    who = _who(chosen)
    # Nothing to write yet: end the transaction before the network, as every sender does.
    session.commit()
    try:
        send_pool(settings).submit(wire_of(message)).result()
    except SendError as exc:
        return _send_failed(request, session, editor, chosen, str(exc))
    audit.record(
        session,
        editor,
        "preview_test_send",
        "digest",
        who,
        after={
            "to": editor.email,
            "subject": str(message["Subject"]),
            "period_start": upcoming.period.start,
            "period_end": upcoming.period.end,
        },
    )
    return see_other(back, "sendt")


def _who(chosen: Chosen) -> str:
    if chosen.subscriber is not None:
        return f"subscriber:{chosen.subscriber.id}"
    return "profile:" + chosen.query


def _send_failed(
    request: Request, session: DbSession, editor: Editor, chosen: Chosen, reason: str
) -> Response:
    language = page_language(request)
    failed = translate(language, "Testen kunne ikke sendes: %(reason)s") % {"reason": reason}
    return admin_page(
        request,
        "preview.html",
        editor,
        status=502,
        section="preview",
        chosen=chosen,
        values=chosen.values,
        errors={},
        send_error=failed,
        upcoming=None,
        why_none="",
        waiting_count=review.waiting_count(session),
        **choice_lists(session, language),
    )
