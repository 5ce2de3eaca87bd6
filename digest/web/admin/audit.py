"""The audit log, for admins: every editor's and admin's action, newest first, filtered by
who, what and what kind of thing it concerned, with what changed shown field by field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from digest.core.i18n import N_, date_time, translate
from digest.core.models import AuditEntry
from digest.editors import audit
from digest.web.admin.common import PREFIX, AdminOnly, admin_page, page_number
from digest.web.common import DbSession
from digest.web.language import page_language
from subscribers.text import strip_invisible

router = APIRouter(prefix=PREFIX)

# A time as `audit.plain` stores it (ISO 8601, with a zone).
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)$")

PER_PAGE = 50

# What the log calls the actions it knows, in bokmål (shown in the page's language);
# others are shown by their name.
ACTIONS = {
    "sign_in": N_("Logget inn"),
    "sign_out": N_("Logget ut"),
    "source_check_now": N_("Sjekket kilde nå"),
    "source_pause": N_("Satte kilde på pause"),
    "source_resume": N_("Gjenopptok kilde"),
    "source_review": N_("Endret gjennomgang for kilde"),
    "run_retry": N_("Prøvde feilede utsendelser på nytt"),
    "announcement_create": N_("Skrev kunngjøring"),
    "announcement_update": N_("Endret kunngjøring"),
    "announcement_publish": N_("Publiserte kunngjøring"),
    "announcement_withdraw": N_("Trakk tilbake kunngjøring"),
    "announcement_delete": N_("Slettet utkast"),
    "change_hide": N_("Skjulte endring"),
    "change_unhide": N_("Viste endring igjen"),
    "change_approve": N_("Godkjente endring"),
    "change_note": N_("Skrev merknad til endring"),
    "change_title": N_("Rettet tittel på endring"),
    "preview_test_send": N_("Sendte test av oversikten til seg selv"),
    "preview_subscriber": N_("Forhåndsviste en abonnents oversikt"),
    "api_token_create": N_("Laget API-nøkkel"),
    "api_token_revoke": N_("Trakk tilbake API-nøkkel"),
    "editor_add": N_("La til redaktør"),
    "editor_role": N_("Endret rolle"),
    "editor_disable": N_("Deaktiverte redaktør"),
    "editor_enable": N_("Aktiverte redaktør"),
    "editor_reset_password": N_("Satte nytt passord"),
    "roster_import": N_("Importerte abonnentliste"),
    "roster_export": N_("Eksporterte abonnentliste"),
}
TARGETS = {
    "editor": N_("Redaktør"),
    "source": N_("Kilde"),
    "run": N_("Utsendelse"),
    "announcement": N_("Kunngjøring"),
    "change": N_("Endring"),
    "subscriber": N_("Abonnent"),
    "token": N_("API-nøkkel"),
    "api_token": N_("API-nøkkel"),
    "subscribers": N_("Abonnenter"),
    "digest": N_("Oversikt"),
}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an entry: its value before and after, as text (– when absent)."""

    name: str
    before: str
    after: str
    changed: bool


def shown(value: object, tz: tzinfo, lang: str) -> str:
    """A value as the log stored it, readably in `lang`: times in the service's zone, yes
    and no, lists as lists; anything else as JSON."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return translate(lang, "ja") if value else translate(lang, "nei")
    if isinstance(value, str):
        if ISO_TIME.match(value):
            try:
                return date_time(datetime.fromisoformat(value), tz, lang)
            except ValueError:
                return value
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else translate(lang, "(ingen)")
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def fields_of(entry: AuditEntry, tz: tzinfo, lang: str) -> list[Field]:
    """The fields an entry's before and after name, the changed ones first."""
    before, after = entry.before or {}, entry.after or {}
    names = list(dict.fromkeys([*before, *after]))
    rows = [
        Field(
            name,
            shown(before.get(name), tz, lang) if entry.before is not None else "",
            shown(after.get(name), tz, lang) if entry.after is not None else "",
            before.get(name) != after.get(name),
        )
        for name in names
    ]
    return sorted(rows, key=lambda f: not f.changed)


def _distinct(session: Session, column: InstrumentedAttribute[str]) -> list[str]:
    # The values the log holds, to choose from (a short list: actions, kinds, editors).
    return [v for v in session.scalars(select(column).distinct().order_by(column)) if v]


def _filter(value: str, limit: int) -> str:
    return strip_invisible(value[: limit * 2]).strip()[:limit]


@router.get("/logg")
def audit_page(
    request: Request,
    session: DbSession,
    editor: AdminOnly,
    redaktor: str = "",
    handling: str = "",
    gjelder: str = "",
    side: str = "",
) -> Response:
    who = _filter(redaktor, 254).lower()  # addresses are stored in lower case
    action, target = _filter(handling, 60), _filter(gjelder, 40)
    number = page_number(side[:10])
    rows = list(
        audit.entries(
            session,
            editor_email=who,
            action=action,
            target_type=target,
            limit=PER_PAGE + 1,  # one more: is there a next page?
            offset=(number - 1) * PER_PAGE,
        )
    )
    filters = {k: v for k, v in (("redaktor", who), ("handling", action), ("gjelder", target)) if v}
    lang = page_language(request)
    tz = request.app.state.settings.tz
    action_labels = {k: translate(lang, v) for k, v in ACTIONS.items()}
    target_labels = {k: translate(lang, v) for k, v in TARGETS.items()}
    return admin_page(
        request,
        "audit.html",
        editor,
        section="audit",
        entries=[(e, fields_of(e, tz, lang)) for e in rows[:PER_PAGE]],
        number=number,
        has_next=len(rows) > PER_PAGE,
        filters=filters,
        chosen={"redaktor": who, "handling": action, "gjelder": target},
        editors=_distinct(session, AuditEntry.editor_email),
        actions={a: action_labels.get(a, a) for a in _distinct(session, AuditEntry.action)},
        targets={t: target_labels.get(t, t) for t in _distinct(session, AuditEntry.target_type)},
        action_labels=action_labels,
        target_labels=target_labels,
    )
