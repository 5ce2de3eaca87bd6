"""GET /healthz (liveness) and GET /readyz (readiness) for load balancers and orchestrators.

/healthz answers 200 whenever this process answers (restarting it would not mend a database
or broker outage), within a second. Its body still says how the database and broker answer,
and whether the workers paused sending because the relay fails. /readyz answers 503 unless
the database, the broker and the relay (connect, EHLO, QUIT; or the outbox when there is no
relay) all answer, within a few seconds each. Each check runs once at a time, whatever the
number of probes: one that hangs holds one thread.
"""

from __future__ import annotations

import asyncio
import math
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from digest.core.broker import check_broker
from digest.core.db import check_database, session_scope
from digest.core.settings import Settings
from digest.delivery.status import relay_state
from digest.mail.mailer import SMTPTransport
from subscribers.base import utcnow

router = APIRouter()

# A liveness probe must answer quickly whatever hangs behind: its checks have this long.
LIVE_SECONDS = 0.8
# Each readiness check has this long to answer.
READY_SECONDS = 3.0
# The relay is asked at most this often however many probes come.
RELAY_EVERY_SECONDS = 5.0


# Each check runs in a daemon thread of its own (a hung one must not hold up the process's
# exit), one run of each check at a time: a probe that comes while its check still runs
# waits for that run's answer. A check that hangs (a database stopped mid-query, a relay
# that trickles) then holds one thread however many probes come, and none of the threads
# the web's own requests run in.
_running: dict[tuple[str, str], Future[str | None]] = {}
_running_lock = threading.Lock()


def _run(future: Future[str | None], check: Callable[[], str | None]) -> None:
    try:
        future.set_result(check())
    except Exception as exc:  # a check that fails outright says why, like one that answers
        future.set_result(f"{type(exc).__name__}: {exc}")


def _run_once(key: tuple[str, str], check: Callable[[], str | None]) -> Future[str | None]:
    """The run of the check `key` names that is under way, or a new one."""
    with _running_lock:
        future = _running.get(key)
        if future is None or future.done():
            future = _running[key] = Future()
            name = f"health-{key[0]}"
            threading.Thread(target=_run, args=(future, check), name=name, daemon=True).start()
        return future


async def _answer(key: tuple[str, str], check: Callable[[], str | None], seconds: float) -> str:
    """The check's answer: "ok", its reason for not, or that it did not answer in time."""
    running = asyncio.wrap_future(_run_once(key, check))
    try:
        # Shielded: one probe giving up must not cancel a run others wait for.
        reason = await asyncio.wait_for(asyncio.shield(running), seconds)
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    return reason or "ok"


def sending_pause(settings: Settings) -> str | None:
    """Why sending waits ("paused until …"), None when it does not."""
    with session_scope(settings.database_url) as session:
        paused_until = relay_state(session, utcnow()).paused_until
    if paused_until is None:
        return None
    return f"paused until {paused_until.isoformat(timespec='seconds')}"


async def _answers(
    settings: Settings, seconds: float, relay_key: tuple[str, str], relay: Callable[[], str | None]
) -> dict[str, str]:
    """The database's, the broker's and the relay's answers ("outbox" without a relay);
    `relay_key` names the relay's check (the pause recorded, or the relay asked)."""

    def database_check() -> str | None:
        return check_database(settings.database_url)

    def broker_check() -> str | None:
        return check_broker(settings.broker_url, seconds)

    database, broker, relay_answer = await asyncio.gather(
        _answer(("database", settings.database_url), database_check, seconds),
        _answer(("broker", settings.broker_url), broker_check, seconds),
        _answer(relay_key, relay, seconds) if settings.smtp_url else _constant("outbox"),
    )
    return {"database": database, "broker": broker, "relay": relay_answer}


async def _constant(answer: str) -> str:
    return answer


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    answers = await _answers(
        settings,
        LIVE_SECONDS,
        ("pause", settings.database_url),
        lambda: sending_pause(settings),
    )
    # This process answers; what it depends on is said beside it, and decides /readyz.
    return JSONResponse({"status": "ok", **answers})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    answers = await _answers(
        settings,
        READY_SECONDS,
        ("relay", settings.smtp_url),
        lambda: relay_probe(settings.smtp_url).check(),
    )
    relay_ok = answers["relay"] in ("ok", "outbox")
    ready = relay_ok and answers["database"] == answers["broker"] == "ok"
    body = {"status": "ok" if ready else "failing", **answers}
    return JSONResponse(body, status_code=200 if ready else 503)


def check_relay(url: str, timeout: float) -> str | None:
    """None when the relay at `url` greets, answers EHLO and QUIT, else the reason."""
    try:
        relay = SMTPTransport(url, timeout)  # only its reading of the URL: host, port, TLS
        if relay.implicit_tls:
            context = ssl.create_default_context()
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                relay.hostname, relay.port, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(relay.hostname, relay.port, timeout=timeout)
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
