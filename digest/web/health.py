"""GET /healthz (liveness) and GET /readyz (readiness) for load balancers and orchestrators.

/healthz answers 200 whenever this process answers (restarting it would not mend a database
or broker outage), within a second. Its body still says how the database and broker answer,
and whether the workers paused sending because the relay fails. /readyz answers 503 unless
the database, the broker and the relay (connect, EHLO, QUIT; or the outbox when there is no
relay) all answer, within a few seconds each.
"""

from __future__ import annotations

import asyncio
import math
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from functools import cache
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from digest.core.broker import check_broker
from digest.core.db import check_database, session_scope
from digest.core.settings import Settings
from digest.delivery.status import relay_state
from subscribers.base import utcnow

router = APIRouter()

# A liveness probe must answer quickly whatever hangs behind: its checks have this long.
LIVE_SECONDS = 0.8
# Each readiness check has this long to answer.
READY_SECONDS = 3.0
# The relay is asked at most this often however many probes come.
RELAY_EVERY_SECONDS = 5.0


async def _answer(check: Callable[[], str | None], seconds: float) -> str:
    """The check's answer: "ok", its reason for not, or that it did not answer in time."""
    try:
        reason = await asyncio.wait_for(run_in_threadpool(check), seconds)
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except Exception as exc:  # a check that fails outright says why, like one that answers
        return f"{type(exc).__name__}: {exc}"
    return reason or "ok"


def sending_pause(settings: Settings) -> str | None:
    """Why sending waits ("paused until …"), None when it does not."""
    with session_scope(settings.database_url) as session:
        paused_until = relay_state(session, utcnow()).paused_until
    if paused_until is None:
        return None
    return f"paused until {paused_until.isoformat(timespec='seconds')}"


async def _answers(
    settings: Settings, seconds: float, relay: Callable[[], str | None]
) -> dict[str, str]:
    """The database's, the broker's and the relay's answers ("outbox" without a relay)."""
    database, broker, relay_answer = await asyncio.gather(
        _answer(lambda: check_database(settings.database_url), seconds),
        _answer(lambda: check_broker(settings.broker_url, seconds), seconds),
        _answer(relay, seconds) if settings.smtp_url else _constant("outbox"),
    )
    return {"database": database, "broker": broker, "relay": relay_answer}


async def _constant(answer: str) -> str:
    return answer


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    answers = await _answers(settings, LIVE_SECONDS, lambda: sending_pause(settings))
    # This process answers; what it depends on is said beside it, and decides /readyz.
    return JSONResponse({"status": "ok", **answers})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    answers = await _answers(
        settings, READY_SECONDS, lambda: relay_probe(settings.smtp_url).check()
    )
    relay_ok = answers["relay"] in ("ok", "outbox")
    ready = relay_ok and answers["database"] == answers["broker"] == "ok"
    body = {"status": "ok" if ready else "failing", **answers}
    return JSONResponse(body, status_code=200 if ready else 503)


def check_relay(url: str, timeout: float) -> str | None:
    """None when the relay at `url` greets, answers EHLO and QUIT, else the reason."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    starttls = parse_qs(parts.query).get("starttls", [""])[-1].lower() in ("true", "1", "yes")
    try:
        if parts.scheme == "smtps":
            context = ssl.create_default_context()
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(host, parts.port or (587 if starttls else 25), timeout=timeout)
        try:
            code, reply = client.ehlo()
            if code != 250:
                return f"EHLO: {code} {reply.decode(errors='replace')}"
            client.quit()
        finally:
            client.close()
    except (smtplib.SMTPException, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class RelayProbe:
    """The relay's last answer, asked again only when older than RELAY_EVERY_SECONDS: probes
    of every instance, every few seconds, must not keep the relay busy. One asks at a time;
    the others take its answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._asked = -math.inf
        self._answer: str | None = None

    def check(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._asked >= RELAY_EVERY_SECONDS:
                self._answer = check_relay(self.url, READY_SECONDS)
                self._asked = time.monotonic()
            return self._answer


@cache
def relay_probe(url: str) -> RelayProbe:
    return RelayProbe(url)
