"""End to end, against real components: a fixture feed over HTTP, the `digest` command,
a real SMTP server, the web app's one-click unsubscribe, and (for the shared brokers) a
real Dramatiq worker process on Redis or RabbitMQ with PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import AMQP_URL, REDIS_URL
from tests.support import command
from tests.support.feeds import rss
from tests.support.server import TLS
from tests.support.site import FixtureSite, Route
from tests.support.smtp import SMTPServer, free_port

T1 = datetime(2025, 11, 25, 10, 0, tzinfo=UTC)  # first collection
T2 = datetime(2025, 11, 26, 10, 0, tzinfo=UTC)  # second collection, next day
T3 = datetime(2025, 11, 27, 10, 0, tzinfo=UTC)


class Service:
    """The service as an operator runs it: `digest` commands and processes, with an env."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.processes: list[subprocess.Popen[bytes] | command.Process] = []

    def digest(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = command.digest(*args, env=self.env, cwd=self.cwd, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"digest {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def python(self, code: str) -> None:
        result = command.run(
            ["-c", code], env=self.env, cwd=self.cwd, timeout=60, capture_output=False
        )
        result.check_returncode()

    def start(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes] | command.Process:
        log = open(self.cwd / f"{args[0]}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        full = {**self.env, **(env or {})}
        process: subprocess.Popen[bytes] | command.Process
        if args[:3] == (sys.executable, "-m", "digest"):
            process = command.start(
                *args[3:], env=full, cwd=self.cwd, stdout=log, stderr=command.STDOUT
            )
        else:
            process = subprocess.Popen(
                args, env=full, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _feed(site: FixtureSite, items: list[dict[str, object]]) -> None:
    site.routes["/feed/"] = Route(rss("RVTS Test", site.url("/"), items))


def _wait_for(check, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_http(url: str, timeout: float = 30.0) -> None:
    def up() -> bool:
        try:
            return httpx.get(url, timeout=1, verify=TLS).status_code < 500
        except httpx.HTTPError:
            return False

    _wait_for(up, timeout, f"{url} to answer")


@pytest.fixture(params=["embedded", "redis+postgresql", "rabbitmq+postgresql"])
def service(
    request, tmp_path: Path, site: FixtureSite, smtp: SMTPServer, sources_file: Path
) -> Iterator[tuple[str, Service]]:
    kind = request.param
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        {
            "DIGEST_DATA_DIR": str(tmp_path / "var"),
            "DIGEST_SOURCES_FILE": str(sources_file),
            "DIGEST_SMTP_URL": smtp.url,
            "DIGEST_FROM_ADDRESS": "varsel@veiledervarsel.no",
            "DIGEST_ALLOW_PRIVATE_HOSTS": "true",
            "DIGEST_FETCH_HOST_DELAY_SECONDS": "0",
            "DIGEST_BASE_URL": f"http://127.0.0.1:{port}",
            "DIGEST_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if kind != "embedded":
        pg_url = request.getfixturevalue("pg_url")
        env["DIGEST_DATABASE_URL"] = pg_url
        env["DIGEST_SECRET_KEY"] = "test-secret-key-that-is-long-enough"
        env["DIGEST_BROKER_URL"] = REDIS_URL if kind.startswith("redis") else AMQP_URL
    svc = Service(env, tmp_path)
    if kind != "embedded":
        # A clean queue: nothing left over from an earlier run reaches this worker.
        svc.python("from digest import actors; actors.broker.flush_all()")
    svc.digest("db", "upgrade")
    svc.digest("sources", "sync")
    svc.start(sys.executable, "-m", "digest", "web")
    if kind != "embedded":
        svc.start(
            *(sys.executable, "-m", "dramatiq", "digest.actors", "--processes", "1"),
            *("--threads", "2"),
            # Dramatiq's own setting: an idle worker looks for messages (and for the signal
            # to stop) every 0.1 s instead of every second.
            env={"dramatiq_worker_timeout": "100"},
        )
    _wait_http(f"http://127.0.0.1:{port}/healthz")
    yield kind, svc
    svc.stop()


def _collect(kind: str, svc: Service, at: datetime) -> None:
    if kind == "embedded":
        out = svc.digest("collect", "--at", at.isoformat()).stdout
        assert "rvts-test:" in out
        return
    # On a shared broker the workers collect, through the collect_source actor.
    svc.python(
        "from digest import actors\n"
        "from digest.core.db import session_scope\n"
        "from digest.core.models import Source\n"
        "from sqlalchemy import select\n"
        "with session_scope(actors.settings.database_url) as s:\n"
        "    ids = s.scalars(select(Source.id).where(Source.enabled.is_(True))).all()\n"
        f"for i in ids: actors.collect_source.send(i, {at.isoformat()!r})\n"
    )
    engine = create_engine(
        svc.env["DIGEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    )
    try:

        def collected() -> bool:
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT count(*) FROM sources WHERE enabled AND last_checked_at = :at"),
                    {"at": at},
                ).scalar()
            return rows == 2

        _wait_for(collected, 30, "the workers to collect")
    finally:
        engine.dispose()


def _send_daily(kind: str, svc: Service, at: str) -> str:
    args = ["send", "daily", "--at", at]
    if kind != "embedded":
        args += ["--wait", "--timeout", "60"]
    return svc.digest(*args).stdout


def _text_and_html(message) -> tuple[str, str]:
    text_part = message.get_body(("plain",)).get_content()
    html_part = message.get_body(("html",)).get_content()
    return text_part, html_part


def test_digest_end_to_end(service, site: FixtureSite, smtp: SMTPServer) -> None:
    kind, svc = service
    inbox = smtp.inbox
    _feed(
        site,
        [
            {
                "title": "Ny veileder om trygghetsarbeid",
                "link": site.url("/aktuelt/trygghet/"),
                "published": T1 - timedelta(hours=3),
                "summary": "<p>Om <b>sikkerhet</b> i krisesentre.</p>",
            },
            {
                "title": "Gammel nyhet fra 2018",
                "link": site.url("/aktuelt/gammel/"),
                "published": datetime(2018, 4, 10, 9, 15, tzinfo=UTC),
                "summary": "Arkiv.",
            },
        ],
    )
    site.routes["/barn/feed/"] = Route(
        rss(
            "Barnesiden",
            site.url("/barn/"),
            [
                {
                    "title": "Samtaler med barn",
                    "link": site.url("/barn/samtaler/"),
                    "published": T1 - timedelta(hours=1),
                    "summary": "Øvelser for å snakke med barn.",
                },
            ],
        )
    )
    svc.digest(
        "subscribers",
        "add",
        "kari@kommune.no",
        "--name",
        "Kari Ødegård",
        "--topic",
        "vold",
        "--confirmed",
    )
    svc.digest("subscribers", "add", "ola@kommune.no", "--name", "Ola", "--confirmed")

    _collect(kind, svc, T1)
    out = _send_daily(kind, svc, "2025-11-26T08:00")
    assert "2 sent" in out, out

    kari = inbox.to("kari@kommune.no")
    assert len(kari) == 1
    text_part, html_part = _text_and_html(kari[0])
    for part in (text_part, html_part):
        assert "Ny veileder om trygghetsarbeid" in part
        assert "Samtaler med barn" not in part  # not her topic
        assert "Gammel nyhet" not in part  # back catalogue at the baseline
    assert kari[0]["Subject"].startswith("Veiledervarsel 26. november 2025: 1 ny artikkel")
    assert "Ødegård" in str(kari[0]["To"])
    assert kari[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    ola = inbox.to("ola@kommune.no")
    assert len(ola) == 1 and "Samtaler med barn" in _text_and_html(ola[0])[0]

    # The same run again sends nothing.
    out = _send_daily(kind, svc, "2025-11-26T08:00")
    assert "already started" in out
    assert len(inbox.messages) == 2

    # A new entry in the next period: only it is sent.
    _feed(
        site,
        [
            {
                "title": "Kurs i trygghetsplanlegging",
                "link": site.url("/aktuelt/kurs/"),
                "published": T2 - timedelta(hours=2),
                "summary": "Nytt kurs.",
            },
            {
                "title": "Ny veileder om trygghetsarbeid",
                "link": site.url("/aktuelt/trygghet/"),
                "published": T1 - timedelta(hours=3),
                "summary": "<p>Om <b>sikkerhet</b> i krisesentre.</p>",
            },
        ],
    )
    _collect(kind, svc, T2)
    out = _send_daily(kind, svc, "2025-11-27T08:00")
    assert "2 sent" in out, out
    ola = inbox.to("ola@kommune.no")
    assert len(ola) == 2 and "Samtaler med barn" not in _text_and_html(ola[1])[0]
    kari = inbox.to("kari@kommune.no")
    assert len(kari) == 2
    second_text, second_html = _text_and_html(kari[1])
    assert "Kurs i trygghetsplanlegging" in second_text and "Kurs i" in second_html
    assert "Ny veileder om trygghetsarbeid" not in second_text

    # One-click unsubscribe, as a mail client does it (RFC 8058).
    unsubscribe_url = kari[1]["List-Unsubscribe"].strip("<>")
    response = httpx.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert response.status_code == 200
    out = svc.digest("subscribers", "list", "--status", "unsubscribed").stdout
    assert "kari@kommune.no" in out

    # The next run skips her; Ola still gets his.
    _feed(
        site,
        [
            {
                "title": "Enda en nyhet om vold",
                "link": site.url("/aktuelt/enda/"),
                "published": T3 - timedelta(hours=2),
                "summary": "Mer.",
            },
        ],
    )
    site.routes["/barn/feed/"] = Route(
        rss(
            "Barnesiden",
            site.url("/barn/"),
            [
                {
                    "title": "Nytt om barn",
                    "link": site.url("/barn/nytt/"),
                    "published": T3 - timedelta(hours=1),
                    "summary": "Nytt.",
                },
            ],
        )
    )
    _collect(kind, svc, T3)
    out = _send_daily(kind, svc, "2025-11-28T08:00")
    assert "1 sent" in out, out
    assert len(inbox.to("kari@kommune.no")) == 2
    assert len(inbox.to("ola@kommune.no")) == 3


@pytest.mark.parametrize("service", ["redis+postgresql", "rabbitmq+postgresql"], indirect=True)
def test_procfile_scheduler_drives_the_workers(service, site: FixtureSite) -> None:
    """`digest scheduler` enqueues collections and runs; the worker process does them."""
    _, svc = service
    _feed(site, [{"title": "Sak", "link": site.url("/sak/"), "published": T1}])
    site.routes["/barn/feed/"] = Route(rss("Barnesiden", site.url("/barn/"), []))
    svc.start(sys.executable, "-m", "digest", "scheduler")
    engine = create_engine(
        svc.env["DIGEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
    )
    try:

        def worked() -> bool:
            with engine.connect() as conn:
                checked = conn.execute(
                    text("SELECT count(*) FROM sources WHERE last_success_at IS NOT NULL")
                ).scalar()
                runs = conn.execute(
                    text("SELECT count(DISTINCT frequency) FROM digest_runs")
                ).scalar()
            return checked == 2 and runs == 3

        _wait_for(worked, 60, "the scheduler's work to be done by the worker")
    finally:
        engine.dispose()
