"""`Idempotency-Key`: a client that sends a create again (after a timeout, say) with the
same key gets the first answer back, and nothing is created twice.

The key is kept per editor with a hash of what was asked (method, path, body as the schema
read it). It is stored in the same transaction as what it answers: it is taken (`reserve`)
before the work, so that of two requests with one key arriving together the second waits
on the unique index (editor, key) and then fails, and is answered from the stored row
after a rollback. The answer is written into it (`complete`) once known. Only successful
answers are kept: a refused request changed nothing, and may be sent again corrected.
Keys older than a day are deleted whenever one is stored (`purge`, which a sweep may also
call).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest.core.models import IdempotentResponse
from digest.web.api.errors import ApiError
from subscribers.base import utcnow

HEADER = "Idempotency-Key"
MAX_KEY = 200
KEEP = timedelta(hours=24)
LOC: list[str | int] = ["header", HEADER]


def checked_key(value: str) -> str:
    """The key as sent, if usable: 1 to 200 printable ASCII characters."""
    if not 0 < len(value) <= MAX_KEY or not all(" " <= c <= "~" for c in value):
        raise ApiError(
            422,
            LOC,
            f"{HEADER} må være 1 til {MAX_KEY} synlige ASCII-tegn.",
            "idempotency_key_invalid",
        )
    return value


def request_hash(method: str, path: str, payload: Mapping[str, object]) -> str:
    canonical = json.dumps([method, path, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def stored(session: Session, editor_id: int, key: str) -> IdempotentResponse | None:
    return session.scalar(
        select(IdempotentResponse).where(
            IdempotentResponse.editor_id == editor_id, IdempotentResponse.key == key
        )
    )


def replay(row: IdempotentResponse, digest: str) -> JSONResponse:
    """The stored answer, if it answered this same request; else a 422."""
    if row.request_hash != digest:
        raise ApiError(
            422,
            LOC,
            f"Denne {HEADER} er brukt til en annen forespørsel. Bruk en ny nøkkel.",
            "idempotency_key_reused",
        )
    return JSONResponse(
        row.body, status_code=row.status_code, headers={"Idempotent-Replayed": "true"}
    )


def reserve(session: Session, editor_id: int, key: str, digest: str) -> IdempotentResponse:
    """Take the key for this request (IntegrityError at the flush if it is taken)."""
    purge(session, utcnow() - KEEP)
    row = IdempotentResponse(
        editor_id=editor_id,
        key=key,
        request_hash=digest,
        status_code=0,
        body={},
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def complete(row: IdempotentResponse, status_code: int, body: dict[str, object]) -> None:
    # In the same transaction as `reserve`: no other request ever sees a key without its
    # answer.
    row.status_code = status_code
    row.body = body


def purge(session: Session, before: datetime) -> int:
    """Delete the keys stored before `before`."""
    result = session.execute(
        delete(IdempotentResponse).where(IdempotentResponse.created_at < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)
