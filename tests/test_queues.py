"""Queues: each kind of work on its own, the Procfile's workers taking each queue once, a
confirmation mail sent while a big run's chunks wait, and `work_here` draining them all."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select

from digest import actors
from digest.core.db import session_scope
from digest.core.models import Delivery, DigestRun, RunStatus
from digest.core.settings import Settings, get_settings
from digest.delivery.notices import queue_notice
from subscribers.choices import choices
from subscribers.signups import add_subscriber
from tests.support.smtp import SMTPServer
from tests.test_runs import RUN_AT, seed, start, statuses

PROCFILE = Path(__file__).parents[1] / "Procfile"


@pytest.fixture(autouse=True)
def empty_queues() -> Iterator[None]:
    """The in-memory broker is the process's: nothing left over reaches the next test."""
    actors.broker.flush_all()
    yield
    actors.broker.flush_all()


def procfile_queues() -> dict[str, set[str]]:
    """The queues each dramatiq process of the Procfile takes."""
    taken: dict[str, set[str]] = {}
    for line in PROCFILE.read_text(encoding="utf-8").splitlines():
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv[:2] == ["dramatiq", "digest.actors"]:
            at = argv.index("--queues")
            taken[name] = set(argv[at + 1 :])
    return taken


def test_each_kind_of_work_has_its_queue_and_one_procfile_worker_takes_it() -> None:
    assert {a.actor_name: a.queue_name for a in actors.broker.actors.values()} == {
        "collect_source": "collect",
        "collect_due": "collect",
        "start_run": "runs",
        "deliver_chunk": "deliver",
        "send_notice_batch": "notices",
        "recover": "sweep",
    }
    taken = procfile_queues()
    assert taken["worker"] == {"deliver"}  # the chunks have workers of their own
    all_taken = [queue for queues in taken.values() for queue in queues]
    assert sorted(all_taken) == sorted(actors.QUEUES)


def test_a_confirmation_goes_out_while_a_big_run_waits(
    settings: Settings, smtp: SMTPServer
) -> None:
    seed(settings, [f"k{n}@kommune.no" for n in range(3)])
    started = start(settings)
    for _ in range(50):  # a big run's chunks, queued first
        actors.deliver_chunk.send(started.run_id, started.chunks[0])
    with session_scope(settings.database_url) as session:
        notice = queue_notice(session, add_subscriber(session, "ny@kommune.no", choices()), "link")
        assert notice is not None
        notice_id = notice.id
    actors.send_notice_batch.send([notice_id])
    # The Procfile's jobs worker: every queue but the chunks'.
    jobs = dramatiq.Worker(
        actors.broker, queues=procfile_queues()["jobs"], worker_threads=1, worker_timeout=100
    )
    jobs.start()
    try:
        actors.broker.join(actors.NOTICES)
    finally:
        jobs.stop()
    assert [e[1] for e in smtp.inbox.envelopes] == [["ny@kommune.no"]]
    assert actors.broker.queues[actors.DELIVER].qsize() == 50  # all still waiting
    assert statuses(settings, started.run_id) == {"pending": 3}


def test_work_here_does_a_start_and_the_chunks_it_enqueues(
    env: pytest.MonkeyPatch, settings: Settings, smtp: SMTPServer
) -> None:
    emails = [f"k{n}@kommune.no" for n in range(5)]
    seed(settings, emails)
    env.setenv("DIGEST_CHUNK_SIZE", "2")  # three chunks, on the deliver queue
    get_settings.cache_clear()
    actors.start_run.send("daily", RUN_AT.isoformat())
    actors.work_here()
    assert sorted(e[1][0] for e in smtp.inbox.envelopes) == emails
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(DigestRun.status)) == RunStatus.COMPLETE


def test_a_second_start_of_a_run_enqueues_nothing(settings: Settings, smtp: SMTPServer) -> None:
    seed(settings, ["a@kommune.no"])
    started = start(settings)  # its chunk is with the workers (here: nowhere)
    actors.start_run.send("daily", RUN_AT.isoformat())
    actors.work_here()
    assert smtp.inbox.envelopes == []
    assert actors.broker.queues[actors.DELIVER].qsize() == 0
    assert statuses(settings, started.run_id) == {"pending": 1}


class Enqueued(dramatiq.Middleware):
    """Records the messages sent, with their delay."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[object, ...], int | None]] = []

    def before_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[object], delay: int | None
    ) -> None:
        self.sent.append((message.actor_name, tuple(message.args), delay))


def test_a_delivery_refused_for_now_is_handed_over_alone_when_due(
    settings: Settings, smtp: SMTPServer
) -> None:
    seed(settings, ["a@kommune.no", "full@kommune.no", "c@kommune.no"])
    smtp.inbox.refuse["full@kommune.no"] = "452 4.2.2 Mailbox full"
    started = start(settings)
    enqueued = Enqueued()
    actors.broker.add_middleware(enqueued)
    try:
        actors.deliver_chunk.send(started.run_id, started.chunks[0])
        actors.work_here()
    finally:
        actors.broker.middleware.remove(enqueued)
    assert statuses(settings, started.run_id) == {"sent": 2, "pending": 1}
    # Not the whole chunk again: the one delivery, when its backoff ends.
    (again,) = enqueued.sent[1:]
    assert again[:2] == ("deliver_chunk", (started.run_id, [2]))
    assert again[2] is not None and again[2] >= 1000
    with session_scope(settings.database_url) as session:
        row = session.scalars(select(Delivery).where(Delivery.subscriber_id == 2)).one()
        assert row.retry_at is not None and row.queued_at == row.retry_at
