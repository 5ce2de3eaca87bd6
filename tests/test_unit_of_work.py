"""The unit of work of a Dramatiq message: committed after the actor, rolled back when it
raises, and the messages it asked for sent only after the commit."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from digest.core.db import get_sessionmaker
from digest.core.errors import DigestError
from digest.core.models import Topic
from digest.core.settings import Settings
from digest.core.unit_of_work import UnitOfWork
from digest.delivery.announcements import add_announcement, list_announcements


@pytest.fixture
def broker(settings: Settings) -> Iterator[StubBroker]:
    broker = StubBroker()
    broker.add_middleware(UnitOfWork(get_sessionmaker(settings.database_url)))
    yield broker
    broker.close()


def titles(settings: Settings) -> list[str]:
    with get_sessionmaker(settings.database_url).begin() as session:
        return sorted(a.title for a in list_announcements(session))


def run(broker: StubBroker, actor: dramatiq.Actor[..., None], *args: object) -> None:
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        actor.send(*args)
        broker.join(actor.queue_name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()


def test_a_message_commits_its_session_before_what_it_enqueues_runs(
    settings: Settings, broker: StubBroker
) -> None:
    units = next(m for m in broker.middleware if isinstance(m, UnitOfWork))
    seen: list[list[str]] = []

    @dramatiq.actor(broker=broker, max_retries=0)
    def look() -> None:
        seen.append(titles(settings))  # a session of its own: sees only what is committed

    @dramatiq.actor(broker=broker, max_retries=0)
    def add(title: str) -> None:
        unit = units.current()
        add_announcement(unit.session, title=title)
        unit.send_after_commit(look)

    run(broker, add, "Ny veileder")
    assert titles(settings) == ["Ny veileder"]
    assert seen == [["Ny veileder"]]


def test_a_message_that_raises_rolls_back_and_enqueues_nothing(
    settings: Settings, broker: StubBroker
) -> None:
    units = next(m for m in broker.middleware if isinstance(m, UnitOfWork))
    seen: list[str] = []

    @dramatiq.actor(broker=broker, max_retries=0)
    def look() -> None:
        seen.append("looked")

    @dramatiq.actor(broker=broker, max_retries=0)
    def add_then_fail(title: str) -> None:
        unit = units.current()
        add_announcement(unit.session, title=title)
        unit.send_after_commit(look)
        raise DigestError("the relay is down")

    run(broker, add_then_fail, "Halvferdig")
    assert titles(settings) == []
    assert seen == []


def test_outside_a_worker_there_is_no_unit_of_work(settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="no unit of work"):
        UnitOfWork(get_sessionmaker(settings.database_url)).current()


def test_a_commit_that_fails_fails_the_message_and_dramatiq_retries_it(
    settings: Settings, broker: StubBroker
) -> None:
    units = next(m for m in broker.middleware if isinstance(m, UnitOfWork))
    attempts: list[str] = []
    seen: list[str] = []

    @dramatiq.actor(broker=broker, max_retries=0)
    def look() -> None:
        seen.append("looked")

    @dramatiq.actor(broker=broker, max_retries=1, min_backoff=1, max_backoff=10)
    def add_topic() -> None:
        # The first attempt's row breaks the unique key of a topic the sync stored, which
        # only the commit finds out; the retry's does not.
        key = "vold" if not attempts else "ny"
        attempts.append(key)
        unit = units.current()
        unit.session.add(Topic(key=key, label="Nytt tema", position=99))
        unit.send_after_commit(look)

    run(broker, add_topic)
    assert attempts == ["vold", "ny"]
    assert seen == ["looked"]  # the failed attempt enqueued nothing
    with get_sessionmaker(settings.database_url).begin() as session:
        assert session.scalar(select(Topic.label).where(Topic.key == "ny")) == "Nytt tema"
