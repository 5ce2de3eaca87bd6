"""The announcements through the JSON API, on an editor's behalf: list, read, create,
edit, publish, withdraw and delete drafts.

Every request carries `Authorization: Bearer <token>` (tokens are made on the tokens page
or with `digest editors token`); a revoked token or a disabled editor's token is refused
at once. No cookie is read, so no CSRF check is needed. Every change goes through
`digest.delivery.announcements` and is written in the audit log as the editor's, with
`"via": "api"` in its `after`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.core.i18n import N_
from digest.core.models import Announcement, AnnouncementStatus, Editor
from digest.delivery import announcements
from digest.delivery.announcements import AnnouncementInput
from digest.editors import audit, tokens
from digest.web.api import idempotency
from digest.web.api.errors import ApiError
from digest.web.api.schemas import (
    AnnouncementCreate,
    AnnouncementFields,
    AnnouncementList,
    AnnouncementOut,
    AnnouncementPatch,
    AnnouncementReplace,
    ErrorAnswer,
)
from digest.web.common import DbSession

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description=N_("En redaktørs API-nøkkel (`vv_…`), laget på /redaksjon/nokler."),
)
AUTH_LOC: list[str | int] = ["header", "Authorization"]


def api_editor(
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Editor:
    """The editor whose live token the request carries; 401 otherwise."""
    if credentials is None:
        raise ApiError(
            401,
            AUTH_LOC,
            "Send en API-nøkkel: Authorization: Bearer <nøkkel>.",
            "token_missing",
            {"WWW-Authenticate": "Bearer"},
        )
    editor = tokens.editor_by_token(session, credentials.credentials)
    if editor is None:
        raise ApiError(
            401,
            AUTH_LOC,
            "API-nøkkelen er ukjent, trukket tilbake eller tilhører en deaktivert redaktør.",
            "token_invalid",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return editor


ApiEditor = Annotated[Editor, Depends(api_editor)]
AnnouncementId = Annotated[int, Path(ge=1, le=2**31 - 1, description=N_("Kunngjøringens id."))]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": N_("Ingen nøkkel, eller en som ikke virker.")},
    422: {"model": ErrorAnswer, "description": N_("Svaret navngir feltet som er feil.")},
}
ONE: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorAnswer, "description": N_("Ingen kunngjøring har denne id-en.")},
}

router = APIRouter(prefix="/v1/announcements", tags=["announcements"], responses=ERRORS)


def _input(fields: AnnouncementFields) -> AnnouncementInput:
    return AnnouncementInput(
        title=fields.title,
        body=fields.body,
        link=fields.link,
        topics=tuple(fields.topics),
        roles=tuple(r.value for r in fields.roles),
        municipalities=tuple(fields.municipalities),
        publish_from=fields.publish_from,
        publish_until=fields.publish_until,
        pinned=fields.pinned,
        send_immediately=fields.send_immediately,
    )


def _record(
    session: Session,
    editor: Editor,
    action: str,
    row: Announcement | None,
    announcement_id: int,
    before: dict[str, object] | None,
) -> None:
    if row is not None and before == announcements.snapshot(row):
        return  # publishing what is published (a retry of a script) is no action
    after = {**announcements.snapshot(row), "via": "api"} if row is not None else {"via": "api"}
    audit.record(
        session, editor, action, "announcement", announcement_id, before=before, after=after
    )


@router.get(
    "",
    summary=N_("List kunngjøringer"),
    response_description=N_("Kunngjøringene."),
    description=N_("Festede først, så de nyeste."),
    response_model=AnnouncementList,
)
def list_announcements(
    session: DbSession,
    editor: ApiEditor,
    status: Annotated[
        AnnouncementStatus | None, Query(description=N_("Bare de med denne statusen."))
    ] = None,
) -> AnnouncementList:
    rows = announcements.list_all(session, status)
    return AnnouncementList(items=[AnnouncementOut.of(row) for row in rows])


@router.post(
    "",
    summary=N_("Lag en kunngjøring"),
    response_description=N_("Kunngjøringen som ble laget."),
    description=N_('Et utkast, eller publisert med en gang med `"publish": true`.'),
    status_code=201,
    response_model=AnnouncementOut,
)
def create_announcement(
    request: Request,
    session: DbSession,
    editor: ApiEditor,
    payload: AnnouncementCreate,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description=N_(
                "Sendes samme forespørsel igjen med samme nøkkel, kommer det første "
                "svaret tilbake, og ingenting lages to ganger (huskes i 24 timer). 1 til 200 "
                "synlige ASCII-tegn; samme nøkkel med en annen forespørsel avvises (422)."
            ),
        ),
    ] = None,
) -> Response:
    key = digest = None
    reserved = None
    if idempotency_key is not None:
        key = idempotency.checked_key(idempotency_key)
        digest = idempotency.request_hash("POST", request.url.path, payload.model_dump(mode="json"))
        earlier = idempotency.stored(session, editor.id, key)
        if earlier is not None:
            return idempotency.replay(earlier, digest)
        try:
            reserved = idempotency.reserve(session, editor.id, key, digest)
        except IntegrityError:
            # The same key arrived at the same time and committed first: its answer.
            session.rollback()
            earlier = idempotency.stored(session, editor.id, key)
            if earlier is None:
                raise
            return idempotency.replay(earlier, digest)
    row = announcements.create(
        session, _input(payload), editor_id=editor.id, publish=payload.publish
    )
    _record(session, editor, "announcement_create", row, row.id, None)
    body = AnnouncementOut.of(row).model_dump(mode="json")
    if reserved is not None:
        idempotency.complete(reserved, 201, body)
    return JSONResponse(body, status_code=201)


@router.get(
    "/{announcement_id}",
    summary=N_("Les en kunngjøring"),
    response_description=N_("Kunngjøringen."),
    response_model=AnnouncementOut,
    responses=ONE,
)
def read_announcement(
    session: DbSession, editor: ApiEditor, announcement_id: AnnouncementId
) -> AnnouncementOut:
    return AnnouncementOut.of(announcements.require(session, announcement_id))


STALE: dict[int | str, dict[str, Any]] = {
    **ONE,
    409: {
        "model": ErrorAnswer,
        "description": N_("Endret i mellomtiden (`version` er den lagrede): les den på nytt."),
    },
}


def _update(
    session: Session,
    editor: Editor,
    announcement_id: int,
    data: AnnouncementInput,
    version: int,
) -> AnnouncementOut:
    before = announcements.snapshot(announcements.require(session, announcement_id))
    row = announcements.update(session, announcement_id, data, version=version)
    _record(session, editor, "announcement_update", row, announcement_id, before)
    return AnnouncementOut.of(row)


@router.put(
    "/{announcement_id}",
    summary=N_("Endre alle feltene i en kunngjøring"),
    response_description=N_("Kunngjøringen etter endringen."),
    description=N_(
        "Felt som utelates, får standardverdien (tom, false), unntatt "
        "`publish_from`, som blir stående. `version` er den som ble lest; en utdatert avvises "
        "med 409."
    ),
    response_model=AnnouncementOut,
    responses=STALE,
)
def replace_announcement(
    session: DbSession,
    editor: ApiEditor,
    announcement_id: AnnouncementId,
    payload: AnnouncementReplace,
) -> AnnouncementOut:
    return _update(session, editor, announcement_id, _input(payload), payload.version)


NULLABLE = frozenset({"link", "publish_until"})


@router.patch(
    "/{announcement_id}",
    summary=N_("Endre noen felt i en kunngjøring"),
    response_description=N_("Kunngjøringen etter endringen."),
    description=N_(
        "Felt som utelates, blir stående; `link` og `publish_until` fjernes med "
        "null. `version` er den som ble lest; en utdatert avvises med 409."
    ),
    response_model=AnnouncementOut,
    responses=STALE,
)
def patch_announcement(
    session: DbSession,
    editor: ApiEditor,
    announcement_id: AnnouncementId,
    payload: AnnouncementPatch,
) -> AnnouncementOut:
    for name in payload.model_fields_set - NULLABLE - {"version"}:
        if getattr(payload, name) is None:
            raise ApiError(422, ["body", name], "Feltet kan ikke være null.", "null_not_allowed")
    row = announcements.require(session, announcement_id)
    # What is stored, with what the patch sends laid over it.
    values = {name: getattr(row, name) for name in announcements.FIELDS}
    for name in payload.model_fields_set - {"version"}:
        value = getattr(payload, name)
        values[name] = [r.value for r in value] if name == "roles" else value
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    data = AnnouncementInput(**fields)
    return _update(session, editor, announcement_id, data, payload.version)


@router.post(
    "/{announcement_id}/publish",
    summary=N_("Publiser et utkast eller en tilbaketrukket kunngjøring"),
    response_description=N_("Kunngjøringen, publisert."),
    description=N_("En publisert blir som den er."),
    response_model=AnnouncementOut,
    responses=ONE,
)
def publish_announcement(
    session: DbSession, editor: ApiEditor, announcement_id: AnnouncementId
) -> AnnouncementOut:
    before = announcements.snapshot(announcements.require(session, announcement_id))
    row = announcements.publish(session, announcement_id)
    _record(session, editor, "announcement_publish", row, announcement_id, before)
    return AnnouncementOut.of(row)


@router.post(
    "/{announcement_id}/withdraw",
    summary=N_("Trekk tilbake en publisert kunngjøring"),
    response_description=N_("Kunngjøringen, trukket tilbake."),
    description=N_("Den sendes ikke lenger ut; en tilbaketrukket blir som den er."),
    response_model=AnnouncementOut,
    responses={
        **ONE,
        409: {"model": ErrorAnswer, "description": N_("Et utkast: slett det i stedet.")},
    },
)
def withdraw_announcement(
    session: DbSession, editor: ApiEditor, announcement_id: AnnouncementId
) -> AnnouncementOut:
    before = announcements.snapshot(announcements.require(session, announcement_id))
    row = announcements.withdraw(session, announcement_id)
    _record(session, editor, "announcement_withdraw", row, announcement_id, before)
    return AnnouncementOut.of(row)


@router.delete(
    "/{announcement_id}",
    summary=N_("Slett et utkast"),
    response_description=N_("Slettet (uten innhold)."),
    description=N_("Bare utkast slettes; det som er publisert, trekkes tilbake i stedet."),
    status_code=204,
    response_class=Response,
    responses={
        **ONE,
        409: {
            "model": ErrorAnswer,
            "description": N_("Ikke et utkast: trekk den tilbake i stedet."),
        },
    },
)
def delete_announcement(
    session: DbSession, editor: ApiEditor, announcement_id: AnnouncementId
) -> Response:
    before = announcements.snapshot(announcements.require(session, announcement_id))
    announcements.delete_draft(session, announcement_id)
    _record(session, editor, "announcement_delete", None, announcement_id, before)
    return Response(status_code=204)
