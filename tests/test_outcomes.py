"""A mail the relay accepted is never sent again because recording it failed: its
outcome goes to a journal first, is kept while the database is away, and is recorded by
the next chunk (in any process on the machine) when it is back. PostgreSQL is made
unreachable through a proxy the test cuts; the machine's PostgreSQL is never touched."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from digest.core.db import get_engine, get_sessionmaker, session_scope
from digest.core.migrate import upgrade
from digest.core.models import Delivery, MailStatus
from digest.core.settings import Settings, get_settings
from digest.delivery import digests, outcomes, sending
from digest.delivery.outcomes import DELIVERIES, Journal, Sent
from digest.mail.mailer import make_transport
from tests.support.faults import TcpProxy
from tests.support.mailroom import deliver_chunk
from tests.support.smtp import Inbox, free_port
from tests.test_runs import seed, start, statuses


class CuttingInbox(Inbox):
    """A relay that, as it accepts the first mail, makes the database go away (and come
    back `back_after` seconds later, if given)."""

    def __init__(self, proxy: TcpProxy, back_after: float | None) -> None:
        super().__init__()
        self.proxy = proxy
        self.back_after = back_after

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        reply = await super().handle_DATA(server, session, envelope)
        if self.proxy.up and len(self.messages) == 1:
            self.proxy.cut()
            if self.back_after is not None:
                threading.Timer(self.back_after, self.proxy.restore).start()
        return reply


@pytest.fixture
def pg(env: pytest.MonkeyPatch, settings: Settings, pg_url: str) -> Iterator[Settings]:
    env.setenv("DIGEST_DATABASE_URL", pg_url)
    env.setenv("DIGEST_SECRET_KEY", "a-test-secret-key-long-enough")
    get_settings.cache_clear()
    config = get_settings()
    upgrade(config.database_url)
    yield config


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    host_port = pg_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    cuttable = TcpProxy((host, int(port))).start()
    yield cuttable
    cuttable.cut()


def through(pg_url: str, proxy: TcpProxy) -> str:
    head, tail = pg_url.split("@", 1)
    return f"{head}@127.0.0.1:{proxy.port}/{tail.split('/', 1)[1]}"


def relay_that_cuts(proxy: TcpProxy, back_after: float | None) -> tuple[CuttingInbox, Controller]:
    inbox = CuttingInbox(proxy, back_after)
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    return inbox, controller


def chunk_through(settings: Settings, url: str, controller: Controller, run_id: int, ids):  # type: ignore[no-untyped-def]
    relaying = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{controller.port}"})
    return digests.deliver_chunk(
        get_sessionmaker(url),
        make_transport(relaying.smtp_url, relaying.outbox_dir),
        relaying,
        run_id,
        ids,
    )


def journal_files(settings: Settings) -> list[Path]:
    return sorted(outcomes.folder_of(settings).glob("*.jsonl"))


def test_outcomes_wait_for_the_database_to_come_back(pg: Settings, pg_url, proxy) -> None:
    emails = [f"k{n}@kommune.no" for n in range(6)]
    seed(pg, emails)
    started = start(pg)
    inbox, controller = relay_that_cuts(proxy, back_after=2.0)
    try:
        report = chunk_through(
            pg, through(pg_url, proxy), controller, started.run_id, started.chunks[0]
        )
    finally:
        controller.stop()
    assert report.sent == len(emails)
    assert sorted(m["To"] for m in inbox.messages) == sorted(emails)
    assert statuses(pg, started.run_id) == {"sent": len(emails)}
    assert journal_files(pg) == []


def test_outcomes_left_in_the_journal_are_recorded_and_never_sent_again(
    pg: Settings, pg_url, proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sending, "RECORD_PATIENCE", 1.0)
    emails = [f"k{n}@kommune.no" for n in range(4)]
    seed(pg, emails)
    started = start(pg)
    inbox, controller = relay_that_cuts(proxy, back_after=None)
    try:
        with pytest.raises(sending.NotRecorded):
            chunk_through(pg, through(pg_url, proxy), controller, started.run_id, started.chunks[0])
        assert len(inbox.messages) == len(emails)
        assert statuses(pg, started.run_id) == {"sending": len(emails)}
        [left] = journal_files(pg)
        assert len(left.read_bytes().splitlines()) == len(emails)
        # The database is back; the claims have gone stale; the next chunk (here, on
        # the direct connection) records them rather than sending them again.
        proxy.restore()
        stale(pg)
        report = chunk_through(pg, pg.database_url, controller, started.run_id, started.chunks[0])
    finally:
        controller.stop()
    assert report.sent == 0 and len(inbox.messages) == len(emails)
    assert statuses(pg, started.run_id) == {"sent": len(emails)}
    assert journal_files(pg) == []


def stale(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        session.execute(update(Delivery).values(claimed_at=datetime.now(UTC) - timedelta(hours=1)))


def test_a_mail_in_a_live_journal_is_never_claimed(settings: Settings, smtp) -> None:
    seed(settings, ["a@kommune.no", "b@kommune.no"])
    started = start(settings)
    with session_scope(settings.database_url) as session:
        first = session.scalars(select(Delivery).order_by(Delivery.id)).first()
        assert first is not None
        first.status, first.attempts = MailStatus.SENDING, 1
        first.claimed_at = datetime.now(UTC) - timedelta(hours=1)  # its worker looks lost
        sent = Sent(DELIVERIES, first.id, first.subscriber_id, datetime.now(UTC), "m@x", 1)
    # Its worker is alive, still trying to record it (its journal is locked).
    journal = Journal(outcomes.folder_of(settings))
    journal.append(sent)
    journal.sync()
    deliver_chunk(settings, started.run_id, started.chunks[0])
    assert [m["To"] for m in smtp.inbox.messages] == ["b@kommune.no"]
    assert statuses(settings, started.run_id) == {"sent": 1, "sending": 1}
    # Its worker gives up on the database, leaving the journal; the next chunk records it.
    journal.close(recorded=False)
    deliver_chunk(settings, started.run_id, started.chunks[0])
    assert [m["To"] for m in smtp.inbox.messages] == ["b@kommune.no"]
    assert statuses(settings, started.run_id) == {"sent": 2}
    with session_scope(settings.database_url) as session:
        row = session.get_one(Delivery, sent.mail_id)
        assert (row.message_id, row.item_count) == ("m@x", 1)
    assert journal_files(settings) == []


def test_the_sweep_replays_what_journals_left(settings: Settings) -> None:
    seed(settings, ["a@kommune.no"])
    started = start(settings)
    with session_scope(settings.database_url) as session:
        row = session.scalars(select(Delivery)).one()
        row.status = MailStatus.SENDING
        sent = Sent(DELIVERIES, row.id, row.subscriber_id, datetime.now(UTC), "m@x", 1)
    journal = Journal(outcomes.folder_of(settings))
    journal.append(sent)
    journal.append(sent)  # twice: a replay records once
    journal.close(recorded=False)
    assert outcomes.replay_journals(get_sessionmaker(settings.database_url), settings) == 2
    assert statuses(settings, started.run_id) == {"sent": 1}
    assert journal_files(settings) == []
    assert outcomes.replay_journals(get_sessionmaker(settings.database_url), settings) == 0
    get_engine.cache_clear()


def test_a_journal_that_cannot_be_written_stops_nothing(settings: Settings, smtp) -> None:
    seed(settings, ["a@kommune.no", "b@kommune.no"])
    started = start(settings)
    folder = outcomes.folder_of(settings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")  # as a full disk or a read-only folder would
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert report.sent == 2 and statuses(settings, started.run_id) == {"sent": 2}


class SlowCuttingInbox(CuttingInbox):
    """A relay that cuts the database at its first mail and takes its time over each."""

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        return await super().handle_DATA(server, session, envelope)


def test_a_chunk_that_cannot_keep_its_claims_stops_sending_them(
    pg: Settings, pg_url, proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is away for one worker (it cannot renew its claims) and there for
    another, which takes the claims for lost once they are stale: the first stops
    handing mails over before then, and its journal names at once the mails it sent, so
    every recipient gets one mail."""
    monkeypatch.setattr(sending, "RECORD_PATIENCE", 1.0)
    # Recorded (and renewed) often enough for claims as short as these.
    monkeypatch.setattr(sending, "RECORD_INTERVAL", 0.1)
    emails = [f"k{n}@kommune.no" for n in range(12)]
    seed(pg, emails)
    started = start(pg)
    quick = pg.model_copy(update={"stale_claim_seconds": 2})
    inbox = SlowCuttingInbox(proxy, back_after=None)
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    failures: list[BaseException] = []

    def first() -> None:
        try:
            chunk_through(quick, through(pg_url, proxy), controller, *chunk)
        except sending.NotRecorded as exc:
            failures.append(exc)

    chunk = (started.run_id, started.chunks[0])
    try:
        worker = threading.Thread(target=first)
        worker.start()
        time.sleep(3)  # the first worker's claims are stale: the second takes them
        chunk_through(quick, pg.database_url, controller, *chunk)
        worker.join()
        # What neither sent (the first stopped, the second came early on a slow
        # machine) goes at the next chunk, once its claims are stale.
        stale(pg)
        chunk_through(quick, pg.database_url, controller, *chunk)
    finally:
        controller.stop()
    assert len(failures) == 1
    assert Counter(m["To"] for m in inbox.messages) == Counter(emails)
    assert statuses(pg, started.run_id) == {"sent": len(emails)}
