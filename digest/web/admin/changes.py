"""Review of detected changes: the list (filters, paging, how many wait), one change's page
with its note and corrected title, and hiding, showing again and approving.

Every action that changes something writes an audit entry with before and after; an
action with nothing to do (hiding a hidden change, a second «Godkjenn») writes none.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from digest.core.i18n import N_, translate, translator
from digest.core.models import ChangeReview, Editor
from digest.delivery import review
from digest.delivery.review import NotWaiting, ReviewError, Revision, UnknownChange
from digest.editors import audit
from digest.web.admin.common import (
    PREFIX,
    SignedIn,
    admin_page,
    page_number,
    row_id,
    safe_next,
    see_other,
)
from digest.web.common import DbSession, topics
from digest.web.forms import Form, FormError, PostedForm, field
from digest.web.language import page_language
from subscribers.base import utcnow

router = APIRouter(prefix=PREFIX)

LIST = f"{PREFIX}/endringer"

KINDS = {"new": N_("Ny"), "updated": N_("Endret")}
MESSAGES = {
    "skjult": N_("Endringen er skjult og kommer ikke med i noen sammendrag."),
    "vist": N_("Endringen vises igjen."),
    "godkjent": N_("Endringen er godkjent og kommer med i neste sammendrag."),
    "notat": N_("Notatet er lagret."),
    "tittel": N_("Tittelen er lagret."),
    "uendret": N_("Ingenting ble endret."),
}
FIELD_LIMITS = {"note": review.NOTE_MAX, "title": review.TITLE_MAX}


class ChangeNotFound(FormError):
    title = N_("Fant ikke endringen")

    def __init__(self) -> None:
        super().__init__(404, N_("Endringen finnes ikke. Den kan være slettet sammen med kilden."))


class NotApprovable(FormError):
    title = N_("Kan ikke godkjennes")

    def __init__(self, state: ChangeReview) -> None:
        reason = (
            N_("Endringen er skjult. Vis den igjen før du godkjenner den.")
            if state is ChangeReview.HIDDEN
            else N_("Endringen venter ikke på godkjenning: kilden sender endringene sine uten.")
        )
        super().__init__(409, reason)


def _change_id(text: str) -> int:
    # A path that is not an id (or one no database column holds) is a missing page.
    return row_id(text, ChangeNotFound())


def _back(form: Form) -> str:
    """Where a form from the list goes back to: the list with its filters, nothing else."""
    return safe_next(field(form, "tilbake", 500), LIST)


def _audited(session: DbSession, editor: Editor, action: str, revision: Revision | None) -> bool:
    if revision is None:
        return False
    audit.record(
        session,
        editor,
        action,
        "change",
        revision.change_id,
        before=revision.before,
        after=revision.after,
    )
    return True


def _query_string(query: dict[str, str]) -> str:
    return "?" + urlencode(query) if query else ""


def _choice(value: str, allowed: set[str]) -> str:
    return value if value in allowed else ""


def state_labels(language: str) -> dict[ChangeReview, str]:
    """Each review state as the pages name it, in `language`."""
    messages = translator(language)
    return {
        # «Sendes» names a run's state on the operators' pages too; here it is a change
        # that goes out without review, hence a context of its own.
        ChangeReview.AUTO: messages.pgettext("change review state", "Sendes"),
        ChangeReview.WAITING: messages.gettext("Venter på godkjenning"),
        ChangeReview.APPROVED: messages.gettext("Godkjent"),
        ChangeReview.HIDDEN: messages.gettext("Skjult"),
    }


def _labels(language: str) -> dict[str, Any]:
    """The review states and kinds of change, as the pages name them in `language`."""
    return {
        "states": state_labels(language),
        "kinds": {kind: translate(language, label) for kind, label in KINDS.items()},
    }


@router.get("/endringer")
def change_list(
    request: Request,
    session: DbSession,
    editor: SignedIn,
    kilde: str = "",
    tema: str = "",
    status: str = "",
    side: str = "1",
) -> Response:
    sources = review.review_sources(session)
    topic_list = topics(session)
    filters = {
        "kilde": _choice(kilde, {s.key for s in sources}),
        "tema": _choice(tema, {t.key for t in topic_list}),
        "status": _choice(status, {s.value for s in ChangeReview}),
    }
    found = review.recent(
        session,
        source_key=filters["kilde"],
        topic=filters["tema"],
        review=ChangeReview(filters["status"]) if filters["status"] else None,
        page=page_number(side),
    )
    query = {k: v for k, v in filters.items() if v}
    return admin_page(
        request,
        "changes.html",
        editor,
        section="changes",
        messages=MESSAGES,
        found=found,
        filters=filters,
        query=query,
        # Back to this list after an action, without the notice this request may show.
        back=LIST + _query_string({**query, "side": str(found.page)} if found.page > 1 else query),
        sources=sources,
        topics=topic_list,
        waiting=review.waiting_count(session),
        **_labels(page_language(request)),
    )


def _change_context(session: DbSession, change_id: int, language: str) -> dict[str, Any]:
    try:
        row = review.get_row(session, change_id)
    except UnknownChange:
        raise ChangeNotFound() from None
    return {
        "section": "changes",
        "row": row,
        **_labels(language),
        "limits": FIELD_LIMITS,
        "values": {"note": row.editor_note, "title": row.corrected_title or ""},
        "errors": {},
    }


@router.get("/endringer/{change_id}")
def change_page(request: Request, session: DbSession, editor: SignedIn, change_id: str) -> Response:
    context = _change_context(session, _change_id(change_id), page_language(request))
    return admin_page(request, "change.html", editor, messages=MESSAGES, **context)


def _state_action(
    session: DbSession, editor: Editor, form: Form, change_id: str, action: str
) -> Response:
    number = _change_id(change_id)
    try:
        if action == "change_hide":
            revision, done = review.hide(session, number), "skjult"
        elif action == "change_unhide":
            revision, done = review.unhide(session, number), "vist"
        else:
            revision, done = review.approve(session, number, editor, utcnow()), "godkjent"
    except UnknownChange:
        raise ChangeNotFound() from None
    except NotWaiting as exc:
        raise NotApprovable(exc.review) from None
    changed = _audited(session, editor, action, revision)
    return see_other(_back(form), done if changed else "uendret")


@router.post("/endringer/{change_id}/skjul")
def hide(session: DbSession, editor: SignedIn, form: PostedForm, change_id: str) -> Response:
    return _state_action(session, editor, form, change_id, "change_hide")


@router.post("/endringer/{change_id}/vis")
def unhide(session: DbSession, editor: SignedIn, form: PostedForm, change_id: str) -> Response:
    return _state_action(session, editor, form, change_id, "change_unhide")


@router.post("/endringer/{change_id}/godkjenn")
def approve(session: DbSession, editor: SignedIn, form: PostedForm, change_id: str) -> Response:
    return _state_action(session, editor, form, change_id, "change_approve")


def _text_action(
    request: Request, session: DbSession, editor: Editor, form: Form, change_id: str, name: str
) -> Response:
    number = _change_id(change_id)
    # Read past the limit, so that an over-long value is refused rather than cut short.
    typed = field(form, name, FIELD_LIMITS[name] * 4 + 100)
    try:
        if name == "note":
            revision = review.set_note(session, number, typed)
        else:
            revision = review.correct_title(session, number, typed)
    except UnknownChange:
        raise ChangeNotFound() from None
    except ReviewError as exc:
        # Returned, not raised (nothing was changed): the page needs the signed-in
        # editor, whom a rollback would leave unreadable.
        language = page_language(request)
        context = _change_context(session, number, language)
        context["values"][name] = typed
        context["errors"] = {name: _note_for(exc, language)}
        return admin_page(request, "change.html", editor, status=400, **context)
    action = "change_note" if name == "note" else "change_title"
    done = _audited(session, editor, action, revision)
    key = ("notat" if name == "note" else "tittel") if done else "uendret"
    return see_other(f"{LIST}/{number}", key)


def _note_for(error: ReviewError, language: str) -> str:
    if error.field == "note":
        note = translate(language, "Notatet kan ha høyst %(limit)s tegn, på én linje.")
        return note % {"limit": review.NOTE_MAX}
    if error.field == "title":
        note = translate(language, "Tittelen kan ha høyst %(limit)s tegn, på én linje.")
        return note % {"limit": review.TITLE_MAX}
    return translate(language, "Noe i skjemaet ble ikke forstått.")


@router.post("/endringer/{change_id}/notat")
def set_note(
    request: Request, session: DbSession, editor: SignedIn, form: PostedForm, change_id: str
) -> Response:
    return _text_action(request, session, editor, form, change_id, "note")


@router.post("/endringer/{change_id}/tittel")
def correct_title(
    request: Request, session: DbSession, editor: SignedIn, form: PostedForm, change_id: str
) -> Response:
    return _text_action(request, session, editor, form, change_id, "title")
