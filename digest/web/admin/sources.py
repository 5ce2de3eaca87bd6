"""The sources and their health, for admins: «check now», pause and resume, and whether a
source's changes wait for review before they are sent.

Every action is audited. «Check now» makes the source due in the request's transaction
(the scheduler collects it on its next round even if the job is lost) and hands the
collection to the app's jobs after the commit.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

from digest.core.i18n import N_, translate
from digest.core.models import Source
from digest.editors import audit
from digest.watch import controls
from digest.watch.overview import source_health
from digest.web.admin.common import (
    PREFIX,
    AdminOnly,
    NotFound,
    admin_page,
    row_id,
    see_other,
)
from digest.web.common import DbSession
from digest.web.forms import FormError, PostedForm, field
from digest.web.jobs import later
from digest.web.language import page_language
from subscribers.base import utcnow

router = APIRouter(prefix=PREFIX)

PAGE = f"{PREFIX}/kilder"

# Messages and labels in bokmål, each shown in the page's language.
MESSAGES = {
    "sjekkes": N_("Kilden sjekkes nå. Last siden på nytt om litt for å se resultatet."),
    "sjekkes-pause": N_("Kilden sjekkes én gang nå. Den er fortsatt satt på pause."),
    "pause": N_("Kilden er satt på pause og blir ikke sjekket før den gjenopptas."),
    "gjenopptatt": N_("Kilden er gjenopptatt og sjekkes igjen som vanlig."),
    "gjennomgang": N_("Innstillingen for gjennomgang før utsending er lagret."),
    "uendret": N_("Ingenting var endret."),
    "fjernet": N_("Kilden er ikke lenger i kildefilen og kan ikke sjekkes."),
}

STATUS_LABELS = {
    "new": N_("Ny"),
    "ok": N_("OK"),
    "failing": N_("Feiler"),
    "broken": N_("Ødelagt"),
    "disabled": N_("Ikke i kildefilen"),
}

NOT_FOUND = N_("Fant ikke kilden. Den kan være fjernet.")

# The review form's choices: as the sources file says, or set here.
REVIEW_CHOICES = {"fil": None, "ja": True, "nei": False}


def source_id_of(value: str) -> int:
    """A source id from the path; an id that is not a number is a page that is not there."""
    return row_id(value, NotFound(NOT_FOUND))


def _source(session: DbSession, value: str) -> Source:
    try:
        return controls.find_source(session, source_id_of(value))
    except controls.SourceNotFound:
        raise NotFound(NOT_FOUND) from None


@router.get("/kilder")
def sources_page(request: Request, session: DbSession, editor: AdminOnly) -> Response:
    lang = page_language(request)
    return admin_page(
        request,
        "sources.html",
        editor,
        section="sources",
        messages={k: translate(lang, v) for k, v in MESSAGES.items()},
        sources=source_health(session),
        status_labels={k: translate(lang, v) for k, v in STATUS_LABELS.items()},
    )


@router.post("/kilder/{source_id}/sjekk")
def check_now(
    request: Request,
    source_id: str,
    session: DbSession,
    editor: AdminOnly,
    form: PostedForm,
    tasks: BackgroundTasks,
) -> Response:
    source = _source(session, source_id)
    before = audit.snapshot(source, controls.CONTROLLED)
    try:
        controls.check_now(source, utcnow())
    except controls.SourceRemoved:
        return see_other(PAGE, "fjernet")
    audit.record(
        session,
        editor,
        "source_check_now",
        "source",
        source.id,
        before=before,
        after=audit.snapshot(source, controls.CONTROLLED),
    )
    later(tasks, request).collect_now(source.id)
    return see_other(PAGE, "sjekkes-pause" if source.paused_at else "sjekkes")


@router.post("/kilder/{source_id}/pause")
def pause(
    request: Request, source_id: str, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    source = _source(session, source_id)
    before = audit.snapshot(source, controls.CONTROLLED)
    if not controls.pause(source, utcnow()):
        return see_other(PAGE, "uendret")
    after = audit.snapshot(source, controls.CONTROLLED)
    audit.record(session, editor, "source_pause", "source", source.id, before=before, after=after)
    return see_other(PAGE, "pause")


@router.post("/kilder/{source_id}/gjenoppta")
def resume(
    request: Request, source_id: str, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    source = _source(session, source_id)
    before = audit.snapshot(source, controls.CONTROLLED)
    if not controls.resume(source):
        return see_other(PAGE, "uendret")
    after = audit.snapshot(source, controls.CONTROLLED)
    audit.record(session, editor, "source_resume", "source", source.id, before=before, after=after)
    return see_other(PAGE, "gjenopptatt")


@router.post("/kilder/{source_id}/gjennomgang")
def review(
    request: Request, source_id: str, session: DbSession, editor: AdminOnly, form: PostedForm
) -> Response:
    source = _source(session, source_id)
    choice = field(form, "review", 10)
    if choice not in REVIEW_CHOICES:
        raise FormError(400, N_("Velg om endringer fra kilden skal gjennomgås før utsending."))
    before = audit.snapshot(source, controls.CONTROLLED)
    if not controls.set_review(source, REVIEW_CHOICES[choice]):
        return see_other(PAGE, "uendret")
    after = audit.snapshot(source, controls.CONTROLLED)
    audit.record(session, editor, "source_review", "source", source.id, before=before, after=after)
    return see_other(PAGE, "gjennomgang")
