"""A chunk of deliveries as issue 10 wants it: claimed in one statement, recorded in
batches, retried with backoff, and a relay's trouble costing the recipients nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, select, update

from digest.core.db import get_engine, get_sessionmaker, session_scope
from digest.core.models import Delivery, DigestRun, MailStatus, RelayStatus, RunStatus
from digest.core.settings import Settings
from digest.delivery import digests, runs, sending
from digest.mail import render
from digest.mail.pool import SendPool
from subscribers.models import Status, Subscriber
from tests.support.mailroom import deliver_chunk
from tests.support.smtp import Inbox, SMTPServer, free_port
from tests.test_runs import backoff_over, seed, start, statuses


@contextmanager
def statements(settings: Settings) -> Iterator[Counter[str]]:
    """The SQL statements run (by their first word, and `deliveries:` the UPDATEs of
    deliveries) and the commits, while the block runs."""
    engine = get_engine(settings.database_url)
    seen: Counter[str] = Counter()

    def executed(conn, cursor, statement: str, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        verb = statement.split(None, 1)[0].upper()
        seen[verb] += 1
        if verb == "UPDATE" and statement.split()[1] == "deliveries":
            seen["deliveries:" + ("claim" if "RETURNING" in statement else "update")] += 1

    def committed(conn) -> None:  # type: ignore[no-untyped-def]
        seen["commit"] += 1

    event.listen(engine, "before_cursor_execute", executed)
    event.listen(engine, "commit", committed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        event.remove(engine, "commit", committed)


def deliveries(settings: Settings) -> dict[str, Delivery]:
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
        session.expunge_all()
    return dict(rows)  # type: ignore[arg-type]


def people(settings: Settings) -> set[tuple[str, int]]:
    with session_scope(settings.database_url) as session:
        return set(session.execute(select(Subscriber.status, Subscriber.soft_failures)).all())  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [10, 40])
def test_a_chunk_claims_in_one_statement_and_records_in_batches(
    settings: Settings, smtp: SMTPServer, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of ten outcomes, whatever the time: the count of commits does not depend on
    # the speed of the machine.
    monkeypatch.setattr(sending, "RECORD_EVERY", 10)
    monkeypatch.setattr(sending, "RECORD_INTERVAL", 3600.0)
    seed(settings, [f"k{n}@kommune.no" for n in range(count)])
    started = start(settings)
    with statements(settings) as seen:
        report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert report.sent == count and len(smtp.inbox.messages) == count
    assert statuses(settings, started.run_id) == {"sent": count}
    # One claim of all, one UPDATE a batch of ten recording them as sent.
    assert seen["deliveries:claim"] == 1
    assert seen["deliveries:update"] == count // 10
    # A commit to claim, one a batch, one to close the chunk.
    assert seen["commit"] == 1 + count // 10 + 1
    # Besides the batches, a fixed number of statements: none per mail.
    per_batch = 2  # the deliveries, and their people's soft bounces reset
    assert (
        sum(seen[v] for v in ("SELECT", "UPDATE", "INSERT", "DELETE")) - (count // 10) * per_batch
        == FIXED_STATEMENTS
    )


# The run, the changes, the announcements, the topic labels, the claim, the subscribers;
# the run's first sending (for the archive, once a chunk); at the end the relay's state,
# the run's open count and its completion, and the deliveries left pending.
FIXED_STATEMENTS = 11


def test_a_recipient_refused_for_now_waits_its_backoff(settings: Settings, smtp) -> None:
    seed(settings, ["a@kommune.no", "full@kommune.no", "c@kommune.no"])
    smtp.inbox.refuse["full@kommune.no"] = "452 4.2.2 Mailbox full"
    started = start(settings)
    before = datetime.now(UTC)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    after = datetime.now(UTC)
    full = deliveries(settings)["full@kommune.no"]
    assert (full.status, full.attempts, full.bounce_counted) == (MailStatus.PENDING, 1, True)
    base = timedelta(seconds=settings.retry_backoff_seconds)
    assert full.retry_at is not None and before + base / 2 <= full.retry_at <= after + base
    assert report.retry_ids == [full.subscriber_id] and report.next_try_at == full.retry_at
    # Not before its time, then again with a longer backoff, until the attempts are used.
    assert deliver_chunk(settings, started.run_id, started.chunks[0]).retry_ids == [2]
    assert deliveries(settings)["full@kommune.no"].attempts == 1
    for attempt in range(2, settings.send_attempts + 1):
        backoff_over(settings)
        report = deliver_chunk(settings, started.run_id, started.chunks[0])
        full = deliveries(settings)["full@kommune.no"]
        assert full.attempts == attempt
        if attempt < settings.send_attempts:
            ceiling = min(base * 2 ** (attempt - 1), timedelta(hours=1))
            assert full.retry_at is not None
            assert full.retry_at - datetime.now(UTC) <= ceiling
            assert full.retry_at - datetime.now(UTC) >= ceiling / 2 - timedelta(seconds=5)
    assert full.status == MailStatus.FAILED and "gave up after 8 attempt(s)" in (full.error or "")
    assert report.failed == 1 and report.retry_ids == []
    assert len(smtp.inbox.to("a@kommune.no")) == 1


def test_a_permanent_refusal_fails_and_suppresses_at_once(settings: Settings, smtp) -> None:
    seed(settings, ["gone@kommune.no", "ok@kommune.no"])
    smtp.inbox.refuse["gone@kommune.no"] = "550 5.1.1 No such user"
    started = start(settings)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert (report.sent, report.failed, report.retry_ids) == (1, 1, [])
    gone = deliveries(settings)["gone@kommune.no"]
    assert gone.status == MailStatus.FAILED and "550" in (gone.error or "")
    with session_scope(settings.database_url) as session:
        person = session.scalar(select(Subscriber).where(Subscriber.email == "gone@kommune.no"))
        assert person is not None and person.status == Status.SUPPRESSED


def test_a_relay_refusing_everyone_costs_no_attempt_and_no_bounce(settings: Settings, smtp):
    emails = [f"k{n}@kommune.no" for n in range(4)]
    seed(settings, emails)
    started = start(settings)
    for address in emails:
        smtp.inbox.refuse[address] = "451 4.7.1 Try again later"
    before = datetime.now(UTC)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert report.retry_ids == started.chunks[0] and report.failed == 0
    assert report.next_try_at is not None
    assert report.next_try_at >= before + timedelta(seconds=settings.relay_pause_seconds)
    for row in deliveries(settings).values():
        assert (row.status, row.attempts, row.bounce_counted) == (MailStatus.PENDING, 0, False)
    assert people(settings) == {(Status.ACTIVE, 0)}


def test_an_hour_without_a_relay_ends_with_every_digest_sent_once(settings: Settings) -> None:
    """The relay is away for longer than every retry of the old schedule: each pass stops
    after a few failures in a row, puts the rest back uncounted, and says when to come
    back; when the relay is back, all go out once and nobody is suppressed."""
    emails = [f"k{n}@kommune.no" for n in range(12)]
    seed(settings, emails)
    started = start(settings)
    port = free_port()
    away = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
    for _pass in range(3 * settings.send_attempts):  # an hour of 30 s pauses, and more
        report = deliver_chunk(away, started.run_id, started.chunks[0])
        assert report.retry_ids == started.chunks[0] and report.sent == report.failed == 0
        backoff_over(settings)
    assert {(r.status, r.attempts) for r in deliveries(settings).values()} == {
        (MailStatus.PENDING, 0)
    }
    back = SMTPServer()
    back.port = port
    back.controller.port = port
    back.start()
    try:
        report = deliver_chunk(away, started.run_id, started.chunks[0])
    finally:
        back.stop()
    assert report.sent == len(emails) and report.retry_ids == []
    assert sorted(r for _, rcpts in back.inbox.envelopes for r in rcpts) == sorted(emails)
    assert people(settings) == {(Status.ACTIVE, 0)}


def test_a_relay_failing_in_a_row_stops_the_chunk(settings: Settings) -> None:
    emails = [f"k{n}@kommune.no" for n in range(10)]
    seed(settings, emails)
    started = start(settings)
    away = settings.model_copy(
        update={"smtp_url": f"smtp://127.0.0.1:{free_port()}", "relay_failure_limit": 3}
    )
    report = deliver_chunk(away, started.run_id, started.chunks[0])
    assert report.retry_ids == started.chunks[0]
    rows = deliveries(settings).values()
    tried = [r for r in rows if r.error and "paused" not in r.error]
    assert len(tried) == 3  # then the rest was left without trying
    assert {(r.status, r.attempts) for r in rows} == {(MailStatus.PENDING, 0)}


def test_a_stale_claim_time_comes_from_the_settings(settings: Settings, smtp) -> None:
    seed(settings, ["a@kommune.no"])
    started = start(settings)
    with session_scope(settings.database_url) as session:
        session.execute(
            update(Delivery).values(
                status=MailStatus.SENDING, claimed_at=datetime.now(UTC) - timedelta(seconds=30)
            )
        )
    assert deliver_chunk(settings, started.run_id, started.chunks[0]).sent == 0
    quick = settings.model_copy(update={"stale_claim_seconds": 10})
    assert deliver_chunk(quick, started.run_id, started.chunks[0]).sent == 1


class SlowInbox(Inbox):
    """A relay that takes its time over each mail (a rate limit, a busy relay)."""

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.5)
        return await super().handle_DATA(server, session, envelope)


def test_a_slow_chunk_keeps_its_claims(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk that takes longer than the stale-claim time renews the claims of the mails
    it has not sent yet, so another worker never takes them for lost and sends them too."""
    monkeypatch.setattr(sending, "RECORD_EVERY", 1)
    emails = [f"k{n}@kommune.no" for n in range(12)]
    seed(settings, emails)
    started = start(settings)
    inbox = SlowInbox()
    relay = Controller(inbox, hostname="127.0.0.1", port=free_port())
    relay.start()
    slow = settings.model_copy(
        update={"smtp_url": f"smtp://127.0.0.1:{relay.port}", "stale_claim_seconds": 3}
    )
    try:
        first = threading.Thread(
            target=deliver_chunk, args=(slow, started.run_id, started.chunks[0])
        )
        first.start()
        time.sleep(4)  # the first chunk's claims are older than the stale-claim time
        second = deliver_chunk(slow, started.run_id, started.chunks[0])
        first.join()
    finally:
        relay.stop()
    assert second.sent == 0
    assert sorted(r for _, rcpts in inbox.envelopes for r in rcpts) == sorted(emails)
    assert statuses(settings, started.run_id) == {"sent": len(emails)}


def test_each_distinct_content_is_rendered_once(
    settings: Settings, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    emails = [f"k{n}@kommune.no" for n in range(12)]
    seed(settings, emails)
    with session_scope(settings.database_url) as session:
        for n, person in enumerate(session.scalars(select(Subscriber).order_by(Subscriber.id))):
            person.language = ("nb", "nn", "en")[n % 3]
    render._template.cache_clear()
    renders: list[str] = []
    rendered = render.rendered

    def counted(digest, *args, **kwargs):  # type: ignore[no-untyped-def]
        renders.append(digest.recipient.language)
        return rendered(digest, *args, **kwargs)

    monkeypatch.setattr(render, "rendered", counted)
    started = start(settings)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert report.sent == 12
    assert sorted(renders) == ["en", "nb", "nn"]
    # Each got their own address and links all the same.
    for address in emails:
        [mail] = smtp.inbox.to(address)
        text = mail.get_body(("plain",)).get_content()
        assert address in text and "/avmelding/" in text


def test_a_chunk_goes_through_the_process_pool(settings: Settings, smtp: SMTPServer) -> None:
    emails = [f"k{n}@kommune.no" for n in range(30)]
    seed(settings, emails)
    started = start(settings)
    pool = SendPool(settings.model_copy(update={"smtp_connections": 3}))
    try:
        report = digests.deliver_chunk(
            get_sessionmaker(settings.database_url),
            pool,
            settings,
            started.run_id,
            started.chunks[0],
        )
    finally:
        pool.close()
    assert report.sent == 30 and statuses(settings, started.run_id) == {"sent": 30}
    assert sorted(r for _, rcpts in smtp.inbox.envelopes for r in rcpts) == sorted(emails)


def test_the_relay_state_is_kept_for_health(settings: Settings) -> None:
    seed(settings, [f"k{n}@kommune.no" for n in range(8)])
    started = start(settings)
    away = settings.model_copy(
        update={"smtp_url": f"smtp://127.0.0.1:{free_port()}", "relay_failure_limit": 3}
    )
    before = datetime.now(UTC)
    report = deliver_chunk(away, started.run_id, started.chunks[0])
    with session_scope(settings.database_url) as session:
        relay = session.get_one(RelayStatus, 1)
        assert relay.failures_in_row == 3 and relay.pauses == 1
        assert relay.paused_until is not None and relay.paused_until > before
        assert "cannot connect" in (relay.last_error or "")
    assert report.next_try_at == relay.paused_until


def test_chunks_of_one_run_at_once_on_sqlite(settings: Settings, smtp: SMTPServer) -> None:
    """Four workers' chunks at once on the embedded database: each waits its turn for the
    write lock rather than failing (a transaction that read before writing would not)."""
    emails = [f"k{n}@kommune.no" for n in range(40)]
    seed(settings, emails)
    started = start(settings)
    ids = [i for chunk in started.chunks for i in chunk]
    failures: list[BaseException] = []

    def work(chunk: list[int]) -> None:
        try:
            deliver_chunk(settings, started.run_id, chunk)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(ids[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert statuses(settings, started.run_id) == {"sent": 40}
    assert sorted(r for _, rcpts in smtp.inbox.envelopes for r in rcpts) == sorted(emails)


def test_recipients_refused_for_now_alone_in_a_pass_give_up_by_age(
    settings: Settings, smtp
) -> None:
    """Two mailboxes full, the only mails of their pass: nobody accepted after them, and
    nothing said the relay was at fault either. Uncounted, as a relay deferring everyone
    would be, but not for ever: once the next period's digest has gone out they fail,
    nobody suppressed, and the run completes (before, they came back together every
    relay pause, uncounted, and the run never completed)."""
    emails = ["full1@kommune.no", "full2@kommune.no"]
    seed(settings, emails)
    for address in emails:
        smtp.inbox.refuse[address] = "452 4.2.2 Mailbox full"
    started = start(settings)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert report.retry_ids == started.chunks[0] and report.failed == 0
    assert {(r.status, r.attempts) for r in deliveries(settings).values()} == {
        (MailStatus.PENDING, 0)
    }
    with session_scope(settings.database_url) as session:
        # Started in time, long ago: the next period's digest has gone out since.
        run = session.get_one(DigestRun, started.run_id)
        run.created_at = run.period_end
        assert runs.give_up_at(run) < datetime.now(UTC)
    backoff_over(settings)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert report.failed == 2 and report.retry_ids == []
    assert statuses(settings, started.run_id) == {"failed": 2}
    with session_scope(settings.database_url) as session:
        assert session.get_one(DigestRun, started.run_id).status == RunStatus.COMPLETE
    assert people(settings) == {(Status.ACTIVE, 0)}


class ContentRefusingInbox(Inbox):
    """A relay that refuses one recipient's mail at DATA, for its content (a spam filter)."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        if self.refused in envelope.rcpt_tos:
            return "554 5.7.1 Message content rejected"
        return await super().handle_DATA(server, session, envelope)


def test_a_mail_the_relay_refuses_for_its_content_fails_and_the_run_completes(
    settings: Settings,
) -> None:
    """A 5xx at DATA for one mail, others accepted after it: that mail's content, not the
    relay's trouble. It fails, its address is not suppressed, and the run completes,
    rather than coming back uncounted every relay pause for ever."""
    seed(settings, ["a@kommune.no", "spam@kommune.no", "c@kommune.no"])
    started = start(settings)
    inbox = ContentRefusingInbox("spam@kommune.no")
    relay = Controller(inbox, hostname="127.0.0.1", port=free_port())
    relay.start()
    try:
        relaying = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{relay.port}"})
        report = deliver_chunk(relaying, started.run_id, started.chunks[0])
    finally:
        relay.stop()
    assert (report.sent, report.failed, report.retry_ids) == (2, 1, [])
    refused = deliveries(settings)["spam@kommune.no"]
    assert refused.status == MailStatus.FAILED and "554" in (refused.error or "")
    assert statuses(settings, started.run_id) == {"sent": 2, "failed": 1}
    assert people(settings) == {(Status.ACTIVE, 0)}
