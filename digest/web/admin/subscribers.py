"""The admins' subscriber pages: search and filters, one person's data (as `digest
subscribers show` gives it), the roster upload (a dry run first, then the import) and
the export.

The roster is checked, then imported, without being kept on the server: the page of the
dry run carries the file back (compressed, in base64) with an HMAC under the service key
that binds it to the admin who checked it, to the options chosen («bekreftet samtykke»,
the basis) and to the time of the check. The import takes only a file with a valid seal,
so it imports exactly what was checked, and only for an hour.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import TypedDict, TypeVar

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from digest.core.i18n import N_, translate
from digest.core.models import Editor
from digest.core.topics import topic_labels
from digest.delivery.notices import queue_confirmations
from digest.delivery.privacy import person_export
from digest.editors import audit
from digest.web.admin.common import PREFIX, AdminOnly, admin_page, page_number
from digest.web.admin.runs import mail_status_labels
from digest.web.admin.uploads import PostedUpload, TooLarge
from digest.web.common import DbSession, frequency_labels, role_labels
from digest.web.errors import FIELD_NOTES, NOT_UNDERSTOOD
from digest.web.forms import Form, FormError, field
from digest.web.jobs import later
from digest.web.language import page_language
from subscribers.models import (
    LANGUAGE_LABELS,
    Channel,
    ConsentAction,
    Frequency,
    NoticeKind,
    Role,
    Status,
)
from subscribers.municipalities import Municipality, find_municipality, municipalities
from subscribers.roster import (
    ImportReport,
    RosterError,
    RowOutcome,
    RowProblem,
    RowResult,
    escaped,
    export_roster,
    import_roster,
    read_roster,
)
from subscribers.search import Filters, by_key, matching, search
from subscribers.text import clean_line, strip_invisible

router = APIRouter(prefix=PREFIX)

ROSTER_LIMIT = 2_000_000  # bytes of CSV: 20,000 rows of a roster are well under it
MAX_ROWS = 20_000  # rows of one upload (the CLI takes more: `digest subscribers import`)
SEAL_LIFETIME = 3600  # seconds between the dry run and its import
SHOWN_PROBLEMS = 1000  # refused and duplicate lines shown on the report
SHOWN_GOOD = 200  # imported and updated lines shown on the report
STALE_CHECK = N_(
    "Kontrollen av filen var utløpt eller endret. Last opp filen og kontroller på nytt."
)

# Labels in bokmål, each shown in the page's language (`_translated`).
STATUS_LABELS = {
    Status.PENDING: N_("Venter på bekreftelse"),
    Status.ACTIVE: N_("Aktiv"),
    Status.UNSUBSCRIBED: N_("Avmeldt"),
    Status.SUPPRESSED: N_("Sperret"),
}
ACTION_LABELS = {
    ConsentAction.SUBSCRIBED: N_("Meldt på"),
    ConsentAction.CONFIRMED: N_("Bekreftet"),
    ConsentAction.PREFERENCES: N_("Endret valg"),
    ConsentAction.UNSUBSCRIBED: N_("Meldt av"),
    ConsentAction.SUPPRESSED: N_("Sperret"),
}
CHANNEL_LABELS = {
    Channel.WEB: N_("Nettsidene"),
    Channel.IMPORT: N_("Abonnentliste"),
    Channel.ADMIN: N_("Kommandolinjen"),
    Channel.SYSTEM: N_("Tjenesten selv"),
}
OUTCOME_LABELS = {
    RowOutcome.IMPORTED: N_("Ny"),
    RowOutcome.UPDATED: N_("Oppdatert"),
    RowOutcome.DUPLICATE: N_("Duplikat"),
    RowOutcome.REFUSED: N_("Avvist"),
}
NOTICE_KINDS = {
    NoticeKind.CONFIRM: N_("Bekreftelseslenke"),
    NoticeKind.LINK: N_("Lenke til innstillingene"),
    NoticeKind.ALREADY: N_("Allerede påmeldt: lenke til innstillingene"),
}
K = TypeVar("K")


def _translated(lang: str, labels: Mapping[K, str]) -> dict[K, str]:
    return {k: translate(lang, v) for k, v in labels.items()}


# Keys whose values `person_export` gives as ISO text: shown as local times.
TIME_KEYS = frozenset(
    {
        "created_at",
        "confirmed_at",
        "unsubscribed_at",
        "suppressed_at",
        "at",
        "sent_at",
        "period_start",
        "period_end",
    }
)


class SubscriberMissing(FormError):
    title = N_("Fant ikke abonnenten")

    def __init__(self) -> None:
        super().__init__(404, N_("Det finnes ingen abonnent med denne lenken. Søk i listen."))


class Labels(TypedDict):
    """What the pages name statuses, roles, frequencies and municipalities."""

    status_labels: dict[Status, str]
    role_labels: dict[Role, str]
    frequency_labels: dict[Frequency, str]
    municipality_names: dict[str, str]
    municipalities: tuple[Municipality, ...]


def _labels(lang: str) -> Labels:
    return {
        "status_labels": _translated(lang, STATUS_LABELS),
        "role_labels": role_labels(lang),
        "frequency_labels": frequency_labels(lang),
        "municipality_names": {m.number: m.name for m in municipalities()},
        "municipalities": municipalities(),
    }


# --- search and export -----------------------------------------------------------------


def _filters(request: Request) -> Filters:
    """The filters the query string asks for; a value that is not one of the choices is
    ignored (a link from an old page, or a hand-made one)."""
    query = request.query_params
    text = " ".join(strip_invisible(query.get("q", "")).split())[:254]
    status = query.get("status", "")
    municipality = find_municipality(query.get("municipality", "")[:100])
    role = query.get("role", "")
    frequency = query.get("frequency", "")
    return Filters(
        text=text,
        status=Status(status) if status in tuple(Status) else None,
        municipality=municipality.number if municipality else "",
        role=role if role in tuple(Role) else "",
        frequency=Frequency(frequency) if frequency in tuple(Frequency) else None,
    )


def _page_number(request: Request) -> int:
    return page_number(request.query_params.get("side", "1"))


@router.get("/abonnenter")
def subscriber_list(request: Request, session: DbSession, editor: AdminOnly) -> Response:
    filters = _filters(request)
    found = search(session, filters, _page_number(request))
    lang = page_language(request)
    return admin_page(
        request,
        "subscribers.html",
        editor,
        section="subscribers",
        filters=filters,
        query=filters.as_dict(),
        found=found,
        statuses=list(Status),
        roles=role_labels(lang),
        frequencies=list(Frequency),
        **_labels(lang),
    )


@router.get("/abonnenter/eksport.csv")
def subscriber_export(request: Request, session: DbSession, editor: AdminOnly) -> Response:
    filters = _filters(request)
    rows = matching(session, filters)
    audit.record(
        session,
        editor,
        "roster_export",
        "subscribers",
        after={"filters": filters.as_dict(), "count": len(rows)},
    )
    # With a BOM, as Excel wants (and as `digest subscribers export FILE` writes it).
    return Response(
        export_roster(rows).encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="abonnenter.csv"'},
    )


# --- the roster ------------------------------------------------------------------------


@router.get("/abonnenter/import")
def roster_form(request: Request, editor: AdminOnly) -> Response:
    return _roster_page(request, editor)


def _roster_page(
    request: Request,
    editor: Editor,
    *,
    status: int = 200,
    values: Mapping[str, object] | None = None,
    errors: Mapping[str, str] | None = None,
    checked: Mapping[str, object] | None = None,
    imported: Mapping[str, object] | None = None,
    carried: Mapping[str, str] | None = None,
    file_name: str = "",
    confirmations: int = 0,
) -> Response:
    """The upload form; after a dry run, its report (`checked`) and the form that imports
    the file it `carried`; after an import, its report (`imported`)."""
    return admin_page(
        request,
        "roster.html",
        editor,
        status=status,
        section="subscribers",
        values={"confirmed": False, "basis": "", **(values or {})},
        errors=dict(errors or {}),
        checked=checked,
        imported=imported,
        carried=carried,
        file_name=file_name,
        confirmations=confirmations,
        outcome_labels=_translated(page_language(request), OUTCOME_LABELS),
        max_mb=ROSTER_LIMIT // 1_000_000,
        max_rows=MAX_ROWS,
    )


def _options(form: Form) -> tuple[bool, str]:
    return field(form, "confirmed", 10) == "1", clean_line(field(form, "basis", 2000), 2000)


@router.post("/abonnenter/import")
def roster_check(
    request: Request, session: DbSession, editor: AdminOnly, upload: PostedUpload
) -> Response:
    """The dry run: the file checked line by line, nothing stored."""
    confirmed, basis = _options(upload.form)
    values = {"confirmed": confirmed, "basis": basis}
    lang = page_language(request)
    errors: dict[str, str] = {}
    data = upload.file or b""
    if len(data) > ROSTER_LIMIT:
        raise TooLarge()
    if not data:
        errors["file"] = translate(lang, "Velg en CSV-fil med abonnenter.")
    if confirmed and not basis:
        errors["basis"] = translate(
            lang,
            "Skriv grunnlaget for at de får e-post uten å bekrefte selv "
            "(for eksempel avtale eller samtykke gitt et annet sted).",
        )
    rows = _rows(data, errors, lang) if data else []
    if errors:
        return _roster_page(request, editor, status=400, values=values, errors=errors)
    settings = request.app.state.settings
    # A dry run, as `digest subscribers import --dry-run`: the import is undone, and only
    # it (the request's own writes, such as the session's last use, stay).
    with session.begin_nested() as dry_run:
        report = _import(session, settings.secret_key, rows, confirmed, basis)
        dry_run.rollback()
    carried = base64.b64encode(zlib.compress(data, 9)).decode("ascii")
    made = str(int(time.time()))
    name = clean_line(upload.file_name, 200)
    return _roster_page(
        request,
        editor,
        values=values,
        checked=_shown(report, lang),
        file_name=name,
        carried={
            "roster": carried,
            "file_name": name,
            "made": made,
            "seal": _seal(settings.secret_key, editor.id, made, confirmed, basis, name, carried),
        },
    )


@router.post("/abonnenter/import/lagre")
def roster_import(
    request: Request,
    session: DbSession,
    editor: AdminOnly,
    upload: PostedUpload,
    tasks: BackgroundTasks,
) -> Response:
    """The import of a file checked by a dry run, with the options of that dry run."""
    settings = request.app.state.settings
    lang = page_language(request)
    form = upload.form
    confirmed, basis = _options(form)
    carried = field(form, "roster", 3_000_000)
    name = field(form, "file_name", 200)
    made = field(form, "made", 20)
    seal = _seal(settings.secret_key, editor.id, made, confirmed, basis, name, carried)
    fresh = made.isascii() and made.isdigit() and 0 <= time.time() - int(made) <= SEAL_LIFETIME
    if not hmac.compare_digest(seal, field(form, "seal", 100)) or not fresh:
        raise FormError(400, STALE_CHECK)
    try:
        data = zlib.decompressobj().decompress(
            base64.b64decode(carried, validate=True), ROSTER_LIMIT
        )
    except (binascii.Error, zlib.error, ValueError):  # sealed by us: cannot happen
        raise FormError(400, N_("Filen kunne ikke leses. Last den opp på nytt.")) from None
    errors: dict[str, str] = {}
    rows = _rows(data, errors, lang)
    if errors:  # sealed by us after the same checks: cannot happen either
        return _roster_page(request, editor, status=400, errors=errors)
    report = _import(session, settings.secret_key, rows, confirmed, basis)
    notices = queue_confirmations(session, report)
    audit.record(
        session,
        editor,
        "roster_import",
        "subscribers",
        after={
            "file": name,
            "confirmed": confirmed,
            "basis": basis,
            **{str(o): report.count(o) for o in RowOutcome},
            "confirmations": len(notices),
        },
    )
    if notices:
        # To the workers (or done here, with none) after the commit.
        later(tasks, request).send_notices(notices)
    return _roster_page(
        request,
        editor,
        values={"confirmed": confirmed, "basis": basis},
        imported=_shown(report, lang),
        file_name=name,
        confirmations=len(notices),
    )


def _rows(data: bytes, errors: dict[str, str], lang: str) -> list[tuple[int, dict[str, str]]]:
    """The file's rows, or a note by the file field saying why there are none."""
    try:
        rows = read_roster(data)
    except RosterError as exc:
        # The reason is roster.py's own text (its catalogue entry, if it has one).
        reason = escaped(translate(lang, exc.reason))
        if exc.line:
            message = translate(
                lang,
                "Filen kan ikke leses som en abonnentliste (linje %(line)s): %(reason)s. "
                "Den må være CSV med en overskriftslinje med minst kolonnen «email».",
            )
        else:
            message = translate(
                lang,
                "Filen kan ikke leses som en abonnentliste: %(reason)s. "
                "Den må være CSV med en overskriftslinje med minst kolonnen «email».",
            )
        errors["file"] = message % {"line": exc.line, "reason": reason}
        return []
    if len(rows) > MAX_ROWS:
        errors["file"] = translate(
            lang,
            "Filen har %(rows)s rader; her kan du laste opp høyst %(most)s om gangen. Del den opp.",
        ) % {"rows": len(rows), "most": MAX_ROWS}
        return []
    return rows


def _import(
    session: Session,
    secret_key: str,
    rows: list[tuple[int, dict[str, str]]],
    confirmed: bool,
    basis: str,
) -> ImportReport:
    return import_roster(
        session,
        secret_key,
        rows,
        known_topics=set(topic_labels(session)),  # a row naming another topic is refused
        confirmed=confirmed,
        basis=basis,
    )


def _seal(
    key: str, editor_id: int, made: str, confirmed: bool, basis: str, name: str, carried: str
) -> str:
    # Every part but the last is free of NUL (numbers, cleaned lines), so the joined
    # message names each part unambiguously.
    message = "\x00".join(
        ["roster", str(editor_id), made, "1" if confirmed else "0", basis, name, carried]
    )
    mac = hmac.new(key.encode(), message.encode("utf-8", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _shown(report: ImportReport, lang: str) -> dict[str, object]:
    """A report as the page shows it: counts, the lines not imported, and some imported."""
    problems = [r for r in report.rows if r.outcome in (RowOutcome.REFUSED, RowOutcome.DUPLICATE)]
    good = [r for r in report.rows if r.outcome in (RowOutcome.IMPORTED, RowOutcome.UPDATED)]
    return {
        "counts": {o: report.count(o) for o in RowOutcome},
        "total": len(report.rows),
        "problems": [_line(r, lang) for r in problems[:SHOWN_PROBLEMS]],
        "problems_total": len(problems),
        "good": [_line(r, lang) for r in good[:SHOWN_GOOD]],
        "good_total": len(good),
        "to_confirm": len(report.to_confirm),
    }


# Why a row was not imported as it stands, in bokmål («%(detail)s»: a line or a field).
PROBLEMS = {
    RowProblem.INVALID_ADDRESS: N_("Ugyldig e-postadresse."),
    RowProblem.REPEATED: N_("Adressen står også på linje %(detail)s."),
    RowProblem.EXTRA_FIELDS: N_("Raden har flere felt enn det er kolonner."),
    RowProblem.SUPPRESSED: N_("Adressen er sperret. Bare en ny påmelding kan ta den tilbake."),
    RowProblem.UNSUBSCRIBED: N_(
        "Personen har meldt seg av. Bare en ny påmelding kan ta den tilbake."
    ),
    RowProblem.UNCHANGED: N_("Allerede importert; ingenting å endre."),
}


def reason_of(row: RowResult, lang: str) -> str:
    """A row's reason as the page says it, in the page's language."""
    if row.problem is None:
        return ""
    if row.problem == RowProblem.BAD_CHOICE:
        # The sign-up form's notes (digest.web.errors), in their own catalogue.
        return translate(lang, FIELD_NOTES.get(row.detail, NOT_UNDERSTOOD))
    return translate(lang, PROBLEMS[row.problem]) % {"detail": row.detail}


def _line(row: RowResult, lang: str) -> dict[str, object]:
    return {
        "line": row.line,
        "email": escaped(row.email),
        "outcome": row.outcome,
        "reason": reason_of(row, lang),
    }


# --- one person ------------------------------------------------------------------------


@router.get("/abonnenter/{key}")
def subscriber_page(key: str, request: Request, session: DbSession, editor: AdminOnly) -> Response:
    lang = page_language(request)
    subscriber = by_key(session, key)
    if subscriber is None:
        raise SubscriberMissing()
    data = _times(person_export(session, subscriber))
    assert isinstance(data, dict)
    return admin_page(
        request,
        "subscriber.html",
        editor,
        section="subscribers",
        subscriber=subscriber,
        data=data,
        topic_names=topic_labels(session),
        action_labels=_translated(lang, ACTION_LABELS),
        channel_labels=_translated(lang, CHANNEL_LABELS),
        language_labels=LANGUAGE_LABELS,  # each language named in itself
        mail_status=mail_status_labels(lang),
        notice_kinds=_translated(lang, NOTICE_KINDS),
        **_labels(lang),
    )


def _times(value: object, key: str = "") -> object:
    """`person_export`'s data with its ISO times as datetimes, for the page to show locally."""
    if isinstance(value, dict):
        return {k: _times(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_times(v) for v in value]
    if key in TIME_KEYS and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value
