"""GET /healthz: does the database answer, and does the broker."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from digest.core.broker import check_broker
from digest.core.db import get_engine

router = APIRouter()


def _check_database(url: str) -> str | None:
    try:
        with get_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure is the answer
        return f"{type(exc).__name__}: {exc}"
    return None


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    database = await run_in_threadpool(_check_database, settings.database_url)
    broker = await run_in_threadpool(check_broker, settings.broker_url)
    body = {
        "status": "ok" if database is None and broker is None else "failing",
        "database": database or "ok",
        "broker": broker or "ok",
    }
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
