"""Logs as JSON with the ids of what they are about, in this process and in a real worker
process started by the `dramatiq` command, whose metrics server shows our instruments."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families

from digest.core.broker import build_broker
from digest.core.logs import JsonFormatter, log_context
from tests.support.smtp import free_port

log = logging.getLogger("tests.logs")


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What `log` writes, as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield stream
    log.removeHandler(handler)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_the_bound_ids_and_extras(lines: io.StringIO) -> None:
    with log_context(run_id=12, chunk=300):
        with log_context(chunk=500):
            log.info("sent %s of %s", 3, 4, extra={"subscriber_id": 501})
        log.warning("ære være «relay»")
    log.info("outside")
    first, second, third = parsed(lines)
    assert first["message"] == "sent 3 of 4" and first["level"] == "INFO"
    assert first["logger"] == "tests.logs" and first["time"].endswith("+00:00")
    assert (first["run_id"], first["chunk"], first["subscriber_id"]) == (12, 500, 501)
    assert second == second | {"message": "ære være «relay»", "run_id": 12, "chunk": 300}
    assert "run_id" not in third and "chunk" not in third


def test_an_exception_is_one_line(lines: io.StringIO) -> None:
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        log.exception("failed", extra={"odd": object()})
    (line,) = lines.getvalue().splitlines()
    record = json.loads(line)
    assert "ValueError: line one\nline two" in record["exception"]
    assert record["odd"].startswith("<object object")


def test_a_message_binds_its_actor_run_and_chunk(lines: io.StringIO) -> None:
    broker = build_broker("memory://")

    def deliver_chunk(run_id: int, subscriber_ids: list[int]) -> None:
        log.info("chunk of %s", len(subscriber_ids))

    def collect_source(source_id: int, at: str | None = None) -> None:
        log.info("collected")
        raise RuntimeError("gone")

    deliver, collect = (
        dramatiq.actor(fn, broker=broker, max_retries=0) for fn in (deliver_chunk, collect_source)
    )
    broker.enqueue(deliver.message(7, [41, 42]))
    broker.enqueue(collect.message(source_id=3))
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        broker.join("default")
    except RuntimeError:
        pass  # collect_source's, raised again by join
    finally:
        worker.stop()
        broker.close()
    chunk, collected = parsed(lines)
    assert chunk == chunk | {"actor": "deliver_chunk", "run_id": 7, "chunk": 41}
    assert collected == collected | {"actor": "collect_source", "source_id": 3}
    assert "run_id" not in collected  # the previous message's ids went with it


# --- a real worker process ----------------------------------------------------------------

PROBE = """
import logging

import dramatiq

from digest.core.instruments import MAILS, SEND_SECONDS

log = logging.getLogger("probe")


@dramatiq.actor(queue_name="observe-probe", max_retries=0)
def probe(run_id: int, subscriber_ids: list[int]) -> None:
    SEND_SECONDS.observe(0.2)
    MAILS.labels("sent").inc()
    log.info("probe sent", extra={"subscriber_id": subscriber_ids[-1]})
"""


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own: the worker below takes every queue it finds."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: RedisBroker(url=url).client.ping(), "Redis")
    yield url
    server.terminate()
    server.wait(timeout=10)


def wait_for(ready: Any, what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            answer = ready()
            if answer:
                return answer
        except Exception:
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, f"{what} did not come"
        time.sleep(0.2)


ONE_THREAD = ("--processes", "1", "--threads", "1")


@contextmanager
def worker_process(folder: Path, broker_url: str, metrics_port: int) -> Iterator[Path]:
    """`dramatiq digest.actors` with a probe actor, JSON logs and its metrics server on
    `metrics_port`, sent one probe(7, [41, 42]); the file its output goes to."""
    (folder / "observe_probe.py").write_text(PROBE)
    (folder / "prometheus").mkdir()
    output = folder / "worker.log"
    environment = {
        **os.environ,
        "DIGEST_BROKER_URL": broker_url,
        "DIGEST_LOG_FORMAT": "json",
        "DIGEST_SECRET_KEY": "k" * 43,
        "dramatiq_prom_host": "127.0.0.1",
        "dramatiq_prom_port": str(metrics_port),
        "dramatiq_prom_db": str(folder / "prometheus"),
        "dramatiq_worker_timeout": "100",
    }
    with output.open("w") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "digest.actors", "observe_probe", *ONE_THREAD],
            env=environment,
            cwd=folder,  # observe_probe is imported from here
            stderr=log_file,
        )
    try:
        sender = RedisBroker(url=broker_url)
        sender.declare_queue("observe-probe")
        message = dramatiq.Message(
            queue_name="observe-probe",
            actor_name="probe",
            args=(7, [41, 42]),
            kwargs={},
            options={},
        )
        sender.enqueue(message)
        yield output
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


def records(output: Path) -> list[dict[str, Any]]:
    """The JSON lines (the dramatiq command's own process logs a few in its text format)."""
    lines = output.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def probe_sent(output: Path) -> dict[str, Any] | None:
    return next((r for r in records(output) if r["message"] == "probe sent"), None)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    """The worker's figures once the probe is done."""
    text = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
    figures = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    done = ("dramatiq_messages_total", (("actor_name", "probe"), ("queue_name", "observe-probe")))
    return figures if figures.get(done) == 1 else None


def test_a_worker_process_logs_json_and_serves_our_metrics(
    env: pytest.MonkeyPatch, tmp_path: Path, private_redis: str
) -> None:
    port = free_port()
    with worker_process(tmp_path, private_redis, port) as output:
        figures = wait_for(lambda: scrape(port), "the probe's metrics")
    assert figures[("digest_send_seconds_count", ())] == 1
    assert figures[("digest_send_seconds_sum", ())] == 0.2
    assert figures[("digest_mails_total", (("outcome", "sent"),))] == 1
    sent = probe_sent(output)
    assert sent is not None
    assert sent == sent | {
        "level": "INFO",
        "logger": "probe",
        "actor": "probe",
        "run_id": 7,
        "chunk": 41,
        "subscriber_id": 42,
    }
    assert "Traceback" not in output.read_text()


def test_a_taken_metrics_port_leaves_the_workers_working(
    env: pytest.MonkeyPatch, tmp_path: Path, private_redis: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with worker_process(tmp_path, private_redis, port) as output:
            wait_for(lambda: probe_sent(output), "the probe")
            wait_for(
                lambda: "no worker metrics on 127.0.0.1" in output.read_text(), "the server's error"
            )
    assert "Traceback" not in output.read_text()
