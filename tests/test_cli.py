"""The `digest` command as operators use it, including `digest run` on the embedded default."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support import command
from tests.support.feeds import rss
from tests.support.site import FixtureSite, Route
from tests.support.smtp import free_port


def digest(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return command.digest(*args, env=env, cwd=cwd, timeout=60)


def test_invalid_address_is_refused_clearly(settings) -> None:
    result = digest("subscribers", "add", "kari@@kommune.no")
    assert result.returncode == 1
    assert (
        "invalid address 'kari@@kommune.no'" in result.stderr and "Traceback" not in result.stderr
    )
    result = digest("subscribers", "add", "kari@kommune.no\r\nBcc: x@y.no")
    assert result.returncode == 1 and "line break" in result.stderr


def test_subscriber_add_list_remove(settings) -> None:
    assert digest("subscribers", "add", "Kari@Kommune.no", "--topic", "vold").returncode == 0
    again = digest("subscribers", "add", "kari@kommune.no")
    assert again.returncode == 1 and "already a subscriber" in again.stderr
    unknown = digest("subscribers", "add", "ola@kommune.no", "--topic", "fotball")
    assert unknown.returncode == 1 and "unknown topic" in unknown.stderr
    listed = digest("subscribers", "list").stdout
    assert "kari@kommune.no" in listed and "pending" in listed
    assert digest("subscribers", "remove", "kari@kommune.no").returncode == 0
    assert "0 subscriber(s)" in digest("subscribers", "list").stdout


def test_announce_refuses_a_script_link(settings) -> None:
    result = digest("announce", "add", "--title", "Kurs", "--link", "javascript:alert(1)")
    assert result.returncode == 1 and "http:// or https://" in result.stderr
    ok = digest(
        "announce",
        "add",
        "--title",
        "Kurs",
        "--topic",
        "vold",
        "--from",
        "2025-11-20T09:00",
        "--until",
        "2026-12-20T09:00",
    )
    assert ok.returncode == 0
    assert "Kurs" in digest("announce", "list").stdout


def test_dry_run_sends_and_stores_nothing(settings, site: FixtureSite, smtp) -> None:
    from datetime import UTC, datetime

    site.routes["/feed/"] = Route(
        rss(
            "T",
            site.url("/"),
            [
                {
                    "title": "Nyhet",
                    "link": site.url("/n/"),
                    "published": datetime(2025, 11, 25, 9, tzinfo=UTC),
                }
            ],
        )
    )
    site.routes["/barn/feed/"] = Route(rss("B", site.url("/"), []))
    digest("sources", "sync")
    digest("subscribers", "add", "kari@kommune.no", "--confirmed")
    digest("collect", "--at", "2025-11-25T12:00")
    out = digest("send", "daily", "--at", "2025-11-26T08:30", "--dry-run").stdout
    assert "kari@kommune.no: 1 article(s)" in out and "Nyhet" in out
    assert smtp.inbox.messages == []
    real = digest("send", "daily", "--at", "2025-11-26T08:30").stdout
    assert "started" in real and "1 sent" in real  # the dry run did not use up the run


def run_env(port: int, sources_file: Path) -> dict[str, str]:
    """The environment of a `digest run` on the embedded default in a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        {
            "DIGEST_PORT": str(port),
            "DIGEST_SOURCES_FILE": str(sources_file),
            "DIGEST_ALLOW_PRIVATE_HOSTS": "true",
            "DIGEST_FETCH_HOST_DELAY_SECONDS": "0",  # no second between robots.txt and the feed
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def wait_until_up(process: command.Process, port: int) -> httpx.Response:
    """The first answer of a starting `digest run` to /healthz, within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        except httpx.HTTPError:
            assert process.poll() is None, "digest run stopped"
            assert time.monotonic() < deadline, "digest run did not come up"
            time.sleep(0.2)


@pytest.mark.timeout(90)
def test_run_serves_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, site: FixtureSite, sources_file: Path
) -> None:
    port = free_port()
    env = run_env(port, sources_file)
    site.routes["/feed/"] = Route(rss("T", site.url("/"), []))
    process = command.start(
        "run", cwd=tmp_path, env=env, stdout=command.PIPE, stderr=command.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        assert wait_until_up(process, port).json()["status"] == "ok"
        # The scheduler's first tick collects through the in-process worker.
        while not any(path == "/feed/" for path, _ in site.requests):
            assert time.monotonic() < deadline + 30, "the embedded worker collected nothing"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "stopped" in output and "Traceback" not in output
    assert (tmp_path / "var" / "digest.db").exists()


def test_send_refuses_a_period_that_has_not_ended(settings) -> None:
    from sqlalchemy import func, select

    from digest.core.db import session_scope
    from digest.core.models import DigestRun

    result = digest("send", "daily", "--at", "2099-01-01T08:00")
    assert result.returncode == 1 and "in the future" in result.stderr
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(DigestRun)) == 0


@pytest.mark.timeout(90)
def test_run_leaves_sources_alone_when_the_file_has_none(
    tmp_path: Path, site: FixtureSite, sources_file: Path
) -> None:
    from sqlalchemy import create_engine, text

    port = free_port()
    env = run_env(port, sources_file)
    assert digest("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    assert digest("sources", "sync", env=env, cwd=tmp_path).returncode == 0
    sources_file.write_text('[topics]\nvold = "Vold"\n', encoding="utf-8")
    process = command.start(
        "run", cwd=tmp_path, env=env, stdout=command.PIPE, stderr=command.STDOUT, text=True
    )
    try:
        wait_until_up(process, port)
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert f"{sources_file} has no [[source]]: not synced" in output
    assert "--allow-empty" in output and "Traceback" not in output
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'digest.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM sources WHERE enabled")).scalar() == 2
    engine.dispose()


# --- digest send --wait: progress until the run is complete, however long -------------


def waiting_send(env: pytest.MonkeyPatch, *args: str) -> command.Process:
    """`digest send daily --wait` on a shared broker, for the run the test started (so it
    enqueues nothing: the workers have it), its first line read."""
    from tests.conftest import REDIS_URL
    from tests.test_runs import RUN_AT

    env.setenv("DIGEST_BROKER_URL", REDIS_URL)
    env.setenv("DIGEST_SECRET_KEY", "a-test-secret-key-long-enough")
    process = command.start(
        *("send", "daily", "--at", RUN_AT.isoformat(), "--wait", *args),
        stdout=command.PIPE,
        stderr=command.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert "already started" in process.stdout.readline()
    return process


@pytest.mark.timeout(60)
def test_send_wait_shows_progress_until_the_workers_are_done(env, settings, smtp) -> None:
    from tests.support.mailroom import deliver_chunk
    from tests.test_runs import seed, start

    seed(settings, ["a@kommune.no", "b@kommune.no"])
    started = start(settings)
    process = waiting_send(env)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith(f"run {started.run_id}: 0 sent, 0 skipped, 0 failed of 2 (0%)")
    deliver_chunk(settings, started.run_id, started.chunks[0])  # the workers, meanwhile
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"run {started.run_id}: 2 sent, 0 skipped, 0 failed of 2 (100%)" in out
    assert out.rstrip().endswith(f"run {started.run_id}: 2 sent")


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_waiting_not_the_run(env, settings, smtp) -> None:
    from tests.test_runs import seed, start, statuses

    seed(settings, ["a@kommune.no"])
    started = start(settings)
    process = waiting_send(env)
    assert process.stdout is not None
    process.stdout.readline()  # waiting
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 3
    assert f"stopped waiting (interrupted); run {started.run_id} goes on" in err
    assert "Traceback" not in err
    assert statuses(settings, started.run_id) == {"pending": 1}


@pytest.mark.timeout(60)
def test_send_wait_gives_up_only_at_a_timeout_asked_for(env, settings, smtp) -> None:
    from tests.test_runs import seed, start

    seed(settings, ["a@kommune.no"])
    started = start(settings)
    process = waiting_send(env, "--timeout", "0.5")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 3
    assert f"run {started.run_id} not complete after 0.5 s" in err


def test_progress_line_says_rate_and_time_left() -> None:
    from collections import Counter

    from digest.commands.send import progress_line
    from digest.delivery.history import RunCounts

    counts = RunCounts(Counter(sent=1200, skipped_empty=30, failed=2, pending=3768))
    assert progress_line(7, counts, 0, 0) == (
        "run 7: 1200 sent, 30 skipped, 2 failed of 5000 (24%)"
    )
    assert progress_line(7, counts, 10, 1232) == (
        "run 7: 1200 sent, 30 skipped, 2 failed of 5000 (24%), 123/s, 31 s left"
    )
    assert progress_line(7, counts, 10, 100).endswith(", 10/s, 6 min 17 s left")
