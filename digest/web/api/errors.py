"""How the API answers an expected error: JSON in FastAPI's 422 shape, never a page.

The main app's handlers (`digest.web.errors`) answer with pages and do not reach inside a
mounted application, so the API registers these (`create_api`). Each answer is
`{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`: `loc` names where the fault
is (`["body", "title"]`, `["path", "announcement_id"]`, `["header", "Authorization"]`), as
FastAPI's own 422 for a body that does not match the schema does. The request's session
has been rolled back by then.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from digest.core.db import DatabaseUnavailable
from digest.core.errors import DigestError
from digest.delivery.announcements import AnnouncementError, AnnouncementNotFound, StaleEdit

log = logging.getLogger(__name__)

Loc = list[str | int]
ID_LOC: Loc = ["path", "announcement_id"]


class ApiError(DigestError):
    """An answer other than success, decided by the API itself (401, 404, 409, 422)."""

    def __init__(
        self,
        status: int,
        loc: Loc,
        message: str,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.loc = loc
        self.kind = kind
        self.headers = headers or {}


def _answer(
    status: int,
    items: list[tuple[Loc, str, str]],
    headers: dict[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    detail = [{"loc": loc, "msg": msg, "type": kind} for loc, msg, kind in items]
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _where(field: str) -> Loc:
    return ID_LOC if field in ("id", "status") else ["body", field]


def api_error(request: Request, exc: Exception) -> Response:
    """The JSON answer for an expected error (Starlette's handler signature)."""
    if isinstance(exc, ApiError):
        return _answer(exc.status, [(exc.loc, str(exc), exc.kind)], exc.headers)
    if isinstance(exc, AnnouncementNotFound):
        return _answer(404, [(ID_LOC, "Kunngjøringen finnes ikke.", "not_found")])
    if isinstance(exc, StaleEdit):
        # The version first; what else was wrong with the edit comes with it.
        items = [
            (_where(f), note, "stale_version" if f == "version" else "announcement_invalid")
            for f, note in exc.errors.items()
        ]
        return _answer(409, items, version=exc.stored_version)
    if isinstance(exc, AnnouncementError):
        if exc.field == "status":  # the announcement's state does not allow it
            return _answer(409, [(ID_LOC, exc.errors.get("status", str(exc)), "wrong_status")])
        items = [(_where(f), note, "announcement_invalid") for f, note in exc.errors.items()]
        return _answer(422, items or [(["body"], str(exc), "announcement_invalid")])
    if not isinstance(exc, DatabaseUnavailable):
        raise exc  # a bug of ours: a 500 with its traceback
    log.error("%s: %s", type(exc).__name__, exc)
    return _answer(
        503, [([], "Tjenesten er ikke tilgjengelig. Prøv igjen om litt.", "unavailable")]
    )
