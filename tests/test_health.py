"""/healthz says the process lives (and whether sending is paused); /readyz says whether the
database, the broker and the relay answer, against a real relay, a closed port and an outbox."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from types import CodeType

import httpx
import pytest

from digest.core.db import session_scope
from digest.core.models import RelayStatus
from digest.core.settings import Settings
from digest.web import health
from digest.web.app import create_app
from subscribers.base import utcnow
from tests.support.server import LiveServer
from tests.support.smtp import SMTPServer, free_port


def serve(settings: Settings) -> Iterator[httpx.Client]:
    server = LiveServer(create_app(settings)).start()
    try:
        with server.client() as client:
            yield client
    finally:
        server.stop()


@pytest.fixture
def relay_away(settings: Settings) -> Iterator[httpx.Client]:
    yield from serve(settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"}))


@pytest.fixture
def outbox(settings: Settings) -> Iterator[httpx.Client]:
    yield from serve(settings.model_copy(update={"smtp_url": ""}))


def pause_sending(settings: Settings, minutes: int) -> str:
    until = (utcnow() + timedelta(minutes=minutes)).replace(microsecond=0)
    with session_scope(settings.database_url) as session:
        session.merge(RelayStatus(id=1, failures_in_row=5, paused_until=until, pauses=3))
    return f"paused until {until.isoformat()}"


def test_all_well(client: httpx.Client, smtp: SMTPServer) -> None:
    expected = {"status": "ok", "database": "ok", "broker": "ok", "relay": "ok"}
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert (response.status_code, response.json()) == (200, expected), path
    # The relay was asked (EHLO), and sent nothing.
    assert smtp.inbox.messages == []


def test_paused_sending_is_said_and_the_process_stays_live(
    settings: Settings, client: httpx.Client
) -> None:
    paused = pause_sending(settings, minutes=10)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "relay": paused}
    # The relay itself answers: ready, the workers go on when the pause ends.
    assert client.get("/readyz").status_code == 200


def test_a_pause_that_ended_is_not_reported(settings: Settings, client: httpx.Client) -> None:
    pause_sending(settings, minutes=-1)
    assert client.get("/healthz").json()["relay"] == "ok"


def test_a_relay_away_is_not_ready_but_live(relay_away: httpx.Client) -> None:
    ready = relay_away.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "failing" and body["database"] == body["broker"] == "ok"
    assert "ConnectionRefusedError" in body["relay"]
    live = relay_away.get("/healthz")
    assert live.status_code == 200 and live.json()["relay"] == "ok"  # no pause recorded


def test_the_outbox_is_ready(outbox: httpx.Client) -> None:
    for path in ("/healthz", "/readyz"):
        response = outbox.get(path)
        assert response.status_code == 200, path
        assert response.json()["relay"] == "outbox"


def test_the_relay_is_asked_once_for_many_probes() -> None:
    from digest.web.health import relay_probe

    relay = SMTPServer().start()
    probe = relay_probe(relay.url)
    assert probe.check() is None
    relay.stop()  # were it asked again, it would not answer
    assert [probe.check() for _ in range(5)] == [None] * 5


@contextmanager
def trickling_relay() -> Iterator[str]:
    """A relay that greets one byte at a time, never ending the line: each read gets a
    byte before its timeout, so the check hangs until the relay stops."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)

    def trickle() -> None:
        connections = []
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = listener.accept()
                connections.append(connection)
            for connection in connections:
                with contextlib.suppress(OSError):
                    connection.send(b"2")
        for connection in connections:
            connection.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield f"smtp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def threads_in(code: CodeType) -> int:
    """Threads whose stack is in `code` now."""
    return sum(
        any(frame.f_code is code for frame, _ in traceback.walk_stack(top))
        for top in sys._current_frames().values()
    )


def test_a_hanging_check_holds_one_thread_however_many_probes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "READY_SECONDS", 0.3)
    with trickling_relay() as url:
        probes = serve(settings.model_copy(update={"smtp_url": url}))
        client = next(probes)
        try:
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: client.get("/readyz"), range(8)))
            for answer in answers:
                assert answer.status_code == 503 and "no answer" in answer.json()["relay"]
                assert answer.json()["database"] == "ok"
            # Probes that came while the relay was being asked took that question's answer:
            # they did not each leave a thread waiting on the relay.
            assert threads_in(health.RelayProbe.check.__code__) <= 1
        finally:
            probes.close()
