"""GET /healthz: does the database answer, and does the broker."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from digest.core.broker import check_broker
from digest.core.db import check_database

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    database = await run_in_threadpool(check_database, settings.database_url)
    broker = await run_in_threadpool(check_broker, settings.broker_url)
    body = {
        "status": "ok" if database is None and broker is None else "failing",
        "database": database or "ok",
        "broker": broker or "ok",
    }
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
