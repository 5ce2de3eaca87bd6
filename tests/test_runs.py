"""Runs and deliveries: one digest per subscriber per run, retries, recovery, announcements once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from digest.core.db import session_scope
from digest.core.migrate import upgrade
from digest.core.models import Change, Delivery, DigestRun, Item, Source
from digest.core.periods import latest_period, schedule_of
from digest.core.settings import Settings, get_settings
from digest.delivery import runs
from digest.delivery.announcements import add_announcement
from subscribers.choices import choices
from subscribers.models import Frequency, Status, Subscriber
from subscribers.signups import add_subscriber
from tests.support.mailroom import deliver_chunk
from tests.support.smtp import SMTPServer

RUN_AT = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def seed(settings: Settings, emails: list[str], changes_at: datetime | None = None) -> None:
    period = latest_period(Frequency.DAILY, RUN_AT, schedule_of(settings))
    detected = changes_at or period.start + timedelta(hours=1)
    with session_scope(settings.database_url) as session:
        source = Source(
            key="s",
            name="Bufdir",
            kind="feed",
            url="https://x.no/f",
            topics=["vold"],
            audiences=[],
            options={},
        )
        session.add(source)
        session.flush()
        item = Item(
            source_id=source.id,
            key="a",
            url="https://x.no/a",
            title="Ny veileder",
            content_hash="h",
            first_seen_at=detected,
            last_seen_at=detected,
        )
        session.add(item)
        session.flush()
        session.add(
            Change(
                item_id=item.id,
                kind="new",
                detected_at=detected,
                title="Ny veileder",
                url="https://x.no/a",
            )
        )
        for email in emails:
            add_subscriber(session, email, choices(), confirmed=True)


def start(settings: Settings, at: datetime = RUN_AT) -> runs.StartedRun:
    with session_scope(settings.database_url) as session:
        return runs.start_run(session, latest_period(Frequency.DAILY, at, schedule_of(settings)))


def backoff_over(settings: Settings) -> None:
    """Time passes: every delivery waiting to be tried again may be tried now."""
    with session_scope(settings.database_url) as session:
        session.execute(update(Delivery).values(retry_at=None))


def statuses(settings: Settings, run_id: int) -> dict[str, int]:
    with session_scope(settings.database_url) as session:
        return dict(runs.run_counts(session, run_id))


def test_the_same_period_is_one_run(settings: Settings, smtp: SMTPServer) -> None:
    seed(settings, ["a@kommune.no"])
    first = start(settings)
    second = start(settings, RUN_AT + timedelta(hours=3))
    assert first.created and not second.created and first.run_id == second.run_id


@pytest.fixture
def pg_settings(env: pytest.MonkeyPatch, settings: Settings, pg_url: str) -> Settings:
    env.setenv("DIGEST_DATABASE_URL", pg_url)
    env.setenv("DIGEST_SECRET_KEY", "a-test-secret-key-long-enough")
    get_settings.cache_clear()
    pg = get_settings()
    upgrade(pg.database_url)
    return pg


def test_two_workers_on_one_chunk_send_each_digest_once(pg_settings, smtp: SMTPServer) -> None:
    emails = [f"k{n}@kommune.no" for n in range(20)]
    seed(pg_settings, emails)
    started = start(pg_settings)
    threads = [
        threading.Thread(
            target=deliver_chunk, args=(pg_settings, started.run_id, started.chunks[0])
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e[1][0] for e in smtp.inbox.envelopes) == sorted(emails)
    assert statuses(pg_settings, started.run_id) == {"sent": 20}
    with session_scope(pg_settings.database_url) as session:
        assert session.scalar(select(DigestRun.status)) == "complete"


def test_temporary_failure_stays_pending_and_permanent_fails(settings, smtp: SMTPServer) -> None:
    seed(settings, ["ok@kommune.no", "full@kommune.no", "gone@kommune.no"])
    smtp.inbox.refuse["full@kommune.no"] = "452 4.2.2 Mailbox full"
    smtp.inbox.refuse["gone@kommune.no"] = "550 5.1.1 No such user"
    started = start(settings)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert (report.sent, report.retry, report.failed) == (1, 1, 1)
    assert statuses(settings, started.run_id) == {"sent": 1, "pending": 1, "failed": 1}
    del smtp.inbox.refuse["full@kommune.no"]
    assert report.retry_ids == [2] and report.next_try_at is not None
    again = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert again.sent == 0  # not before its backoff is over
    backoff_over(settings)
    again = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert again.sent == 1
    assert statuses(settings, started.run_id) == {"sent": 2, "failed": 1}
    assert len(smtp.inbox.to("ok@kommune.no")) == 1


def test_recovery_resends_a_lost_claim_with_the_same_message_id(settings, smtp) -> None:
    seed(settings, ["a@kommune.no"])
    started = start(settings)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with session_scope(settings.database_url) as session:
        # A worker claimed it and died before recording the send.
        session.execute(update(Delivery).values(status="sending", claimed_at=long_ago))
        session.execute(update(DigestRun).values(created_at=long_ago))
    with session_scope(settings.database_url) as session:
        assert runs.unfinished_chunks(session, datetime.now(UTC)) == [
            (started.run_id, started.chunks[0])
        ]
    deliver_chunk(settings, started.run_id, started.chunks[0])
    message = smtp.inbox.messages[0]
    assert message["Message-ID"] == f"<digest-run{started.run_id}-sub1@veiledervarsel.no>"
    with session_scope(settings.database_url) as session:
        assert runs.unfinished_chunks(session, datetime.now(UTC)) == []


def test_unsubscribed_after_the_start_is_skipped(settings, smtp: SMTPServer) -> None:
    seed(settings, ["a@kommune.no"])
    started = start(settings)
    with session_scope(settings.database_url) as session:
        session.execute(update(Subscriber).values(status=Status.UNSUBSCRIBED.value))
    deliver_chunk(settings, started.run_id, started.chunks[0])
    assert smtp.inbox.messages == []
    assert statuses(settings, started.run_id) == {"skipped_inactive": 1}


def test_an_announcement_goes_once_and_on_top(settings, smtp: SMTPServer) -> None:
    seed(settings, ["a@kommune.no"])
    with session_scope(settings.database_url) as session:
        add_announcement(
            session,
            title="Fagdag om vold",
            body="Velkommen",
            publish_from=RUN_AT - timedelta(days=2),
        )
    first = start(settings)
    deliver_chunk(settings, first.run_id, first.chunks[0])
    text = smtp.inbox.messages[0].get_body(("plain",)).get_content()
    assert text.index("Fagdag om vold") < text.index("Ny veileder")
    second = start(settings, RUN_AT + timedelta(days=1))
    deliver_chunk(settings, second.run_id, second.chunks[0])
    assert len(smtp.inbox.messages) == 1  # nothing new and the announcement was had
    assert statuses(settings, second.run_id) == {"skipped_empty": 1}


def test_a_run_with_no_subscribers_is_complete_at_once(settings, smtp) -> None:
    started = start(settings)
    assert started.chunks == []
    with session_scope(settings.database_url) as session:
        assert session.get_one(DigestRun, started.run_id).status == "complete"


def test_a_hard_bounce_suppresses_and_a_dead_server_does_not(settings, smtp: SMTPServer) -> None:
    seed(settings, ["ok@kommune.no", "gone@kommune.no"])
    smtp.inbox.refuse["gone@kommune.no"] = "550 5.1.1 No such user"
    started = start(settings)
    deliver_chunk(settings, started.run_id, started.chunks[0])
    with session_scope(settings.database_url) as session:
        statuses_now = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
    assert statuses_now == {"ok@kommune.no": "active", "gone@kommune.no": "suppressed"}
    # The next run does not even try the suppressed address.
    later = start(settings, RUN_AT + timedelta(days=1))
    with session_scope(settings.database_url) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.run_id == later.run_id)
            )
            == 1
        )
    # A server that cannot be reached says nothing about the addresses.
    from tests.support.smtp import free_port

    dead = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
    seed_more(settings, "ny@kommune.no")
    third = start(settings, RUN_AT + timedelta(days=2))
    for _ in range(6):
        deliver_chunk(dead, third.run_id, third.chunks[0])
    with session_scope(settings.database_url) as session:
        assert (
            session.scalar(
                select(Subscriber.soft_failures).where(Subscriber.email == "ok@kommune.no")
            )
            == 0
        )
        assert (
            session.scalar(select(Subscriber.status).where(Subscriber.email == "ok@kommune.no"))
            == "active"
        )


def test_repeated_soft_bounces_suppress(settings, smtp: SMTPServer) -> None:
    # One soft bounce per run (per delivery), counted since the relay accepted someone else.
    seed(settings, ["full@kommune.no", "ok@kommune.no"])
    smtp.inbox.refuse["full@kommune.no"] = "452 4.2.2 Mailbox full"
    for day in range(settings.soft_bounce_limit):
        started = start_with_a_change(settings, RUN_AT + timedelta(days=day))
        deliver_chunk(settings, started.run_id, started.chunks[0])
        # A day passes between runs; the count is of days in a row, not of quick tries.
        with session_scope(settings.database_url) as session:
            for person in session.scalars(select(Subscriber)):
                if person.soft_failed_at is not None:
                    person.soft_failed_at -= timedelta(days=1)
    with session_scope(settings.database_url) as session:
        full = session.scalar(select(Subscriber).where(Subscriber.email == "full@kommune.no"))
        assert (
            full.status == "suppressed" and "temporary delivery failures" in full.suppressed_reason
        )


def test_soft_bounces_in_quick_runs_count_once(settings, smtp: SMTPServer) -> None:
    seed(settings, ["full@kommune.no", "ok@kommune.no"])
    smtp.inbox.refuse["full@kommune.no"] = "452 4.2.2 Mailbox full"
    # The periods of a week, sent back to back, as the scheduler does after an outage.
    for day in range(settings.soft_bounce_limit + 2):
        started = start_with_a_change(settings, RUN_AT + timedelta(days=day))
        deliver_chunk(settings, started.run_id, started.chunks[0])
    with session_scope(settings.database_url) as session:
        full = session.scalar(select(Subscriber).where(Subscriber.email == "full@kommune.no"))
        assert (full.status, full.soft_failures) == ("active", 1)


def start_with_a_change(settings: Settings, at: datetime) -> runs.StartedRun:
    """The daily run at `at`, with one change detected two hours before it."""
    with session_scope(settings.database_url) as session:
        session.add(
            Change(
                item_id=session.scalar(select(Item.id)),
                kind="updated",
                title="Endret",
                url="https://x.no/a",
                detected_at=at - timedelta(hours=2),
            )
        )
    return start(settings, at)


def seed_more(settings: Settings, email: str) -> None:
    with session_scope(settings.database_url) as session:
        item_id = session.scalar(select(Item.id))
        session.add(
            Change(
                item_id=item_id,
                kind="updated",
                title="Endret igjen",
                url="https://x.no/a",
                detected_at=RUN_AT + timedelta(days=1, hours=2),
            )
        )
        add_subscriber(session, email, choices(), confirmed=True)
