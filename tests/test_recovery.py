"""Recovery: a second start hands nothing over again; the sweep requeues what the broker or a
worker lost (each once, even with two sweeps at once), completes runs, starts the daily
and weekly runs that were never started, and deletes delivery rows past their retention."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from digest.core.db import get_sessionmaker, session_scope
from digest.core.models import (
    Announcement,
    AnnouncementReceipt,
    Delivery,
    DigestRun,
    MailStatus,
    RunStatus,
)
from digest.core.periods import latest_period, period_before, schedule_of
from digest.core.settings import Settings
from digest.delivery import retention, runs
from subscribers.models import Frequency
from tests.test_runs import RUN_AT, pg_settings, seed, start, statuses  # noqa: F401

EMAILS = [f"k{n}@kommune.no" for n in range(5)]
REQUEUE = runs.Requeue(after=timedelta(seconds=180), stale=timedelta(seconds=120), chunk_size=2)


@pytest.fixture(autouse=True)
def empty_queues() -> Iterator[None]:
    """The in-memory broker is the process's: nothing left over reaches the next test."""
    from digest import actors

    actors.broker.flush_all()
    yield
    actors.broker.flush_all()


def deliveries(settings: Settings) -> dict[int, Delivery]:
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(Delivery)).all()
        session.expunge_all()
    return {d.subscriber_id: d for d in rows}


def set_delivery(settings: Settings, subscriber_id: int, **values: object) -> None:
    with session_scope(settings.database_url) as session:
        session.execute(
            update(Delivery).where(Delivery.subscriber_id == subscriber_id).values(**values)
        )


def sweep(settings: Settings, now: datetime) -> list[tuple[int, list[int]]]:
    with session_scope(settings.database_url) as session:
        return runs.unfinished_chunks(session, now, REQUEUE)


def test_a_second_start_hands_nothing_over_again(settings: Settings) -> None:
    seed(settings, EMAILS)
    with session_scope(settings.database_url) as session:
        period = latest_period(Frequency.DAILY, RUN_AT, schedule_of(settings))
        first = runs.start_run(session, period, chunk_size=2, now=RUN_AT)
    assert first.created and first.chunks == [[1, 2], [3, 4], [5]]
    assert {d.queued_at for d in deliveries(settings).values()} == {RUN_AT}
    again = start(settings, RUN_AT + timedelta(hours=1))
    assert (again.run_id, again.created, again.chunks) == (first.run_id, False, [])


def test_the_sweep_requeues_lost_messages_and_lost_workers_only(settings: Settings) -> None:
    seed(settings, EMAILS)
    started = start(settings)
    now = datetime.now(UTC)
    # 1: its message was lost long ago. 2: queued a moment ago, in the queue still.
    set_delivery(settings, 1, queued_at=now - timedelta(minutes=10))
    set_delivery(settings, 2, queued_at=now - timedelta(seconds=10))
    # 3: lost, but not to be tried before its backoff ends. 4: a worker died with it.
    set_delivery(settings, 3, queued_at=None, retry_at=now + timedelta(minutes=5))
    set_delivery(settings, 4, status=MailStatus.SENDING, claimed_at=now - timedelta(minutes=3))
    # 5: claimed a moment ago: its worker is at it.
    set_delivery(settings, 5, status=MailStatus.SENDING, claimed_at=now - timedelta(seconds=30))
    assert sweep(settings, now) == [(started.run_id, [1, 4])]
    assert deliveries(settings)[1].queued_at == now
    # Handed over again just now: the next sweep leaves the lost message alone; the
    # stale claim is handed over until a worker claims it again.
    assert sweep(settings, now + timedelta(seconds=60)) == [(started.run_id, [4])]
    # Later all are: 5's claim is stale by then too.
    later = now + timedelta(minutes=6)
    assert sweep(settings, later) == [(started.run_id, chunk) for chunk in ([1, 2], [3, 4], [5])]


def test_the_sweep_completes_runs_with_nothing_open(settings: Settings) -> None:
    seed(settings, EMAILS[:2])
    started = start(settings)
    for sid in (1, 2):
        set_delivery(settings, sid, status=MailStatus.SKIPPED_EMPTY)
    assert sweep(settings, datetime.now(UTC)) == []
    with session_scope(settings.database_url) as session:
        run = session.get_one(DigestRun, started.run_id)
        assert run.status == RunStatus.COMPLETE and run.completed_at is not None


def test_two_sweeps_at_once_requeue_each_lost_delivery_once(pg_settings: Settings) -> None:  # noqa: F811
    seed(pg_settings, EMAILS)
    started = start(pg_settings)
    with session_scope(pg_settings.database_url) as session:
        session.execute(update(Delivery).values(queued_at=None))
    now = datetime.now(UTC)
    sessions = get_sessionmaker(pg_settings.database_url)
    first = sessions()
    second_result: list[tuple[int, list[int]]] = []
    try:
        mine = runs.requeue_lost(first, now, REQUEUE)  # holds the rows' locks, uncommitted
        # The other sweep waits on those locks, then finds them queued just now.
        other = threading.Thread(
            target=lambda: second_result.extend(
                runs.requeue_lost(session := sessions(), now, REQUEUE) or session.commit() or []
            )
        )
        other.start()
        first.commit()
        other.join(timeout=30)
        assert not other.is_alive()
    finally:
        first.close()
    assert mine == [(started.run_id, [1, 2]), (started.run_id, [3, 4]), (started.run_id, [5])]
    assert second_result == []


def daily_runs(settings: Settings) -> list[datetime]:
    with session_scope(settings.database_url) as session:
        return list(
            session.scalars(
                select(DigestRun.period_end)
                .where(DigestRun.frequency == Frequency.DAILY)
                .order_by(DigestRun.period_end)
            )
        )


def test_missing_daily_runs_of_the_last_week_are_found(settings: Settings) -> None:
    schedule = schedule_of(settings)
    now = RUN_AT + timedelta(hours=3)
    latest = latest_period(Frequency.DAILY, now, schedule)
    week = [latest]
    for _ in range(9):
        week.insert(0, period_before(week[0], schedule))
    with session_scope(settings.database_url) as session:
        assert runs.missing_periods(session, now, schedule) == []  # never ran: not ours
        for period in (week[2], week[5], week[9]):
            runs.start_run(session, period)
    with session_scope(settings.database_url) as session:
        missing = runs.missing_periods(session, now, schedule)
    # The holes after the first run and inside the catch-up window, oldest first.
    assert missing == [week[3], week[4], week[6], week[7], week[8]]


def test_the_sweep_actor_fills_a_hole_and_sends_its_digests_once(settings: Settings, smtp) -> None:
    from digest import actors

    schedule = schedule_of(settings)
    latest = latest_period(Frequency.DAILY, datetime.now(UTC), schedule)
    before = period_before(latest, schedule)
    hole = period_before(before, schedule)
    oldest = period_before(hole, schedule)
    seed(settings, EMAILS[:2], changes_at=hole.start + timedelta(hours=1))
    with session_scope(settings.database_url) as session:
        for period in (oldest, before, latest):
            run_id = runs.start_run(session, period).run_id
            session.execute(
                update(Delivery)
                .where(Delivery.run_id == run_id)
                .values(status=MailStatus.SKIPPED_EMPTY)
            )
    actors.recover.send()
    actors.work_here()
    actors.recover.send()
    actors.work_here()
    assert daily_runs(settings) == [p.end for p in (oldest, hole, before, latest)]
    with session_scope(settings.database_url) as session:
        assert set(session.scalars(select(DigestRun.status))) == {RunStatus.COMPLETE}
    # The change was in the hole's period: its digests went out once.
    assert sorted(e[1][0] for e in smtp.inbox.envelopes) == sorted(EMAILS[:2])


def test_the_sweep_actor_resends_a_lost_claim_once(settings: Settings, smtp) -> None:
    from digest import actors

    seed(settings, EMAILS[:2])
    started = start(settings)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    set_delivery(settings, 1, status=MailStatus.SENDING, claimed_at=long_ago, queued_at=long_ago)
    set_delivery(settings, 2, queued_at=long_ago)
    actors.recover.send()
    actors.work_here()
    assert sorted(e[1][0] for e in smtp.inbox.envelopes) == sorted(EMAILS[:2])
    assert statuses(settings, started.run_id) == {"sent": 2}


def test_old_delivery_rows_are_deleted_and_their_receipts_kept(settings: Settings) -> None:
    seed(settings, EMAILS[:3])
    started = start(settings)
    with session_scope(settings.database_url) as session:
        announcement = Announcement(
            title="Kurs", body="Påmelding", publish_from=RUN_AT - timedelta(days=1)
        )
        session.add(announcement)
        session.flush()
        first = session.scalar(select(Delivery.id).where(Delivery.subscriber_id == 1))
        session.add(
            AnnouncementReceipt(announcement_id=announcement.id, subscriber_id=1, delivery_id=first)
        )
    set_delivery(settings, 1, status=MailStatus.SENT)
    set_delivery(settings, 2, status=MailStatus.FAILED)  # 3 is still pending: left alone
    just_kept = RUN_AT + timedelta(days=89)
    with session_scope(settings.database_url) as session:
        assert retention.delete_old_deliveries(session, just_kept, 90) == 0
    much_later = RUN_AT + timedelta(days=91)
    with session_scope(settings.database_url) as session:
        assert retention.delete_old_deliveries(session, much_later, 90, limit=1) == 1
        assert retention.delete_old_deliveries(session, much_later, 90) == 1
        assert retention.delete_old_deliveries(session, much_later, 90) == 0
    assert list(deliveries(settings)) == [3]
    with session_scope(settings.database_url) as session:
        receipt = session.scalars(select(AnnouncementReceipt)).one()
        assert (receipt.subscriber_id, receipt.delivery_id) == (1, None)  # still received
        assert session.scalar(select(func.count()).select_from(DigestRun)) == 1
        assert session.get_one(DigestRun, started.run_id).status == RunStatus.RUNNING


def test_an_immediate_gap_is_one_run_started_through_its_actor(settings: Settings) -> None:
    from digest import actors

    end = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    gap_start = end - timedelta(days=2)
    actors.start_run.send("immediate", end.isoformat(), gap_start.isoformat())
    actors.work_here()
    with session_scope(settings.database_url) as session:
        run = session.scalars(select(DigestRun)).one()
        assert (run.frequency, run.period_start, run.period_end) == (
            Frequency.IMMEDIATE,
            gap_start,
            end,
        )


def test_a_changed_daily_hour_starts_no_second_run_for_days_already_sent(
    settings: Settings,
) -> None:
    from dataclasses import replace
    from datetime import time

    schedule = schedule_of(settings)
    now = RUN_AT + timedelta(hours=3)
    latest = latest_period(Frequency.DAILY, now, schedule)
    with session_scope(settings.database_url) as session:
        period = latest
        for _ in range(9):
            runs.start_run(session, period)
            period = period_before(period, schedule)
    earlier_hour = replace(schedule, daily_at=time(6, 0))
    with session_scope(settings.database_url) as session:
        assert runs.missing_periods(session, now, earlier_hour) == []
