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

from digest.core.i18n import DEFAULT, date_time
from digest.core.models import AuditEntry
from digest.editors import audit
from digest.web.admin.common import PREFIX, AdminOnly, admin_page, page_number
from digest.web.common import DbSession
from subscribers.text import strip_invisible

router = APIRouter(prefix=PREFIX)

# A time as `audit.plain` stores it (ISO 8601, with a zone).
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)$")

PER_PAGE = 50

# What the log calls the actions it knows, in bokmål; others are shown by their name.
ACTIONS = {
    "sign_in": "Logget inn",
    "sign_out": "Logget ut",
    "source_check_now": "Sjekket kilde nå",
    "source_pause": "Satte kilde på pause",
    "source_resume": "Gjenopptok kilde",
    "source_review": "Endret gjennomgang for kilde",
    "run_retry": "Prøvde feilede utsendelser på nytt",
    "announcement_create": "Skrev kunngjøring",
    "announcement_update": "Endret kunngjøring",
    "announcement_publish": "Publiserte kunngjøring",
    "announcement_withdraw": "Trakk tilbake kunngjøring",
    "announcement_delete": "Slettet utkast",
    "change_hide": "Skjulte endring",
    "change_unhide": "Viste endring igjen",
    "change_approve": "Godkjente endring",
    "change_note": "Skrev merknad til endring",
    "change_title": "Rettet tittel på endring",
    "preview_test_send": "Sendte test av oversikten til seg selv",
    "preview_subscriber": "Forhåndsviste en abonnents oversikt",
    "api_token_create": "Laget API-nøkkel",
    "api_token_revoke": "Trakk tilbake API-nøkkel",
    "editor_add": "La til redaktør",
    "editor_role": "Endret rolle",
    "editor_disable": "Deaktiverte redaktør",
    "editor_enable": "Aktiverte redaktør",
    "editor_reset_password": "Satte nytt passord",
    "roster_import": "Importerte abonnentliste",
    "roster_export": "Eksporterte abonnentliste",
}
TARGETS = {
    "editor": "Redaktør",
    "source": "Kilde",
    "run": "Utsendelse",
    "announcement": "Kunngjøring",
    "change": "Endring",
    "subscriber": "Abonnent",
    "token": "API-nøkkel",
    "api_token": "API-nøkkel",
    "subscribers": "Abonnenter",
    "digest": "Oversikt",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an entry: its value before and after, as text (– when absent)."""

    name: str
    before: str
    after: str
    changed: bool


def shown(value: object, tz: tzinfo) -> str:
    """A value as the log stored it, readably: times in the service's zone, yes and no,
    lists as lists; anything else as JSON."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "ja" if value else "nei"
    if isinstance(value, str):
        if ISO_TIME.match(value):
            try:
                return date_time(datetime.fromisoformat(value), tz, DEFAULT)
            except ValueError:
                return value
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "(ingen)"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def fields_of(entry: AuditEntry, tz: tzinfo) -> list[Field]:
    """The fields an entry's before and after name, the changed ones first."""
    before, after = entry.before or {}, entry.after or {}
    names = list(dict.fromkeys([*before, *after]))
    rows = [
        Field(
            name,
            shown(before.get(name), tz) if entry.before is not None else "",
            shown(after.get(name), tz) if entry.after is not None else "",
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
    return admin_page(
        request,
        "audit.html",
        editor,
        section="audit",
        entries=[(e, fields_of(e, request.app.state.settings.tz)) for e in rows[:PER_PAGE]],
        number=number,
        has_next=len(rows) > PER_PAGE,
        filters=filters,
        chosen={"redaktor": who, "handling": action, "gjelder": target},
        editors=_distinct(session, AuditEntry.editor_email),
        actions={a: ACTIONS.get(a, a) for a in _distinct(session, AuditEntry.action)},
        targets={t: TARGETS.get(t, t) for t in _distinct(session, AuditEntry.target_type)},
        action_labels=ACTIONS,
        target_labels=TARGETS,
    )
