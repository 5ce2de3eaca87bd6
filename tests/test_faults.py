"""Delivery under faults, with real components (issue 10): PostgreSQL, a private Redis,
two Dramatiq worker processes and the scheduler as the Procfile runs them, and an aiosmtpd
relay made to misbehave. A worker is killed, the broker restarted empty, the relay refuses
or hangs, the scheduler misses its time, the database goes away; every subscriber must
still get exactly one digest (two copies of the same message only where one was in flight),
soon. Timings are short settings (faults.SHORT); each scenario reports its figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import Delivery, DigestRun, MailStatus, RunStatus
from digest.core.periods import Period, Schedule, schedule_of
from digest.core.settings import get_settings
from subscribers.models import Frequency, Subscriber
from tests.support.faults import (
    Rig,
    Tally,
    add_changes,
    add_history,
    add_subscribers,
    latest,
    subscriber_states,
    wait_for,
)
from tests.support.relay import DATA, MAIL, RCPT

pytestmark = [pytest.mark.faults, pytest.mark.timeout(540)]

SUBSCRIBERS = 300
# The bound: a run is complete this long after the fault ends, at the latest.
RECOVERY_SECONDS = 300


@pytest.fixture
def rig(env: pytest.MonkeyPatch, tmp_path: Path, pg_url: str) -> Iterator[Rig]:
    rig = Rig(tmp_path, pg_url)
    try:
        yield rig
    finally:
        rig.close()


@pytest.fixture
def schedule(env: pytest.MonkeyPatch) -> Schedule:
    """The schedule the processes run on: the defaults (env clears DIGEST_*)."""
    return schedule_of(get_settings())


def daily_run(rig: Rig, schedule: Schedule, count: int = SUBSCRIBERS) -> tuple[Period, list[str]]:
    """A service that ran until yesterday, owing today's daily run to `count` daily
    subscribers (one change in its period); the scheduler starts it when it starts."""
    period = latest(Frequency.DAILY, schedule)
    add_history(
        rig.database_url,
        schedule,
        {
            Frequency.DAILY: period.start,
            Frequency.WEEKLY: latest(Frequency.WEEKLY, schedule).end,
            Frequency.IMMEDIATE: latest(Frequency.IMMEDIATE, schedule).end,
        },
    )
    add_changes(rig.database_url, [period.start + timedelta(hours=1)])
    return period, add_subscribers(rig.database_url, Frequency.DAILY, count)


def wait_delivered(rig: Rig, share: float, of: int) -> None:
    """Until the relay has `share` of `of` mails: the moment to break something."""
    wait_for(
        lambda: rig.relay.count() >= share * of,
        120,
        f"{share:.0%} of the run delivered",
        rig.evidence,
    )


def finish(
    rig: Rig, period: Period, expected: list[str], what: str, seconds: float = RECOVERY_SECONDS
) -> tuple[float, Tally]:
    """Wait up to `seconds` for the run of `period` to complete, give the sweep a few
    rounds to send anything twice, and count the relay's mails to `expected`; the seconds
    the run took to complete, and the count."""
    took = rig.wait_complete(period, seconds, what)
    rig.settle()
    return took, rig.tally(expected)


def assert_one_each(rig: Rig, tally: Tally, extra: Callable[[str], int] = lambda _: 0) -> None:
    """Every subscriber owed a mail has one; a recipient may have `extra(recipient)` more
    copies of that same message (those in flight when something broke), never another."""
    problems = []
    if tally.lost:
        problems.append(f"{len(tally.lost)} never mailed, e.g. {tally.lost[:5]}")
    if tally.strangers:
        problems.append(f"{len(tally.strangers)} mailed but not owed, e.g. {tally.strangers[:5]}")
    mixed = tally.mixed()
    if mixed:
        sample = dict(list(mixed.items())[:3])
        problems.append(f"{len(mixed)} got more than one digest (different Message-IDs): {sample}")
    too_many = {r: ids for r, ids in tally.twice().items() if len(ids) > 1 + extra(r)}
    if too_many:
        sample = dict(list(too_many.items())[:3])
        problems.append(f"{len(too_many)} got the same message more often than allowed: {sample}")
    assert not problems, "\n".join(problems) + "\n" + rig.evidence()


def assert_all_sent(rig: Rig, expected: dict[str, int]) -> None:
    assert dict(rig.deliveries()) == expected, rig.evidence()


def test_a_worker_killed_mid_run(rig: Rig, schedule: Schedule) -> None:
    """SIGKILL one worker (its process group) at 30% and start it again: one mail each,
    or two of the same message for those in flight; complete within 5 minutes."""
    rig.scenario = "worker SIGKILL at 30%"
    period, people = daily_run(rig, schedule)
    rig.start()
    wait_delivered(rig, 0.3, len(people))
    killed = time.monotonic()
    rig.processes.kill("worker-1")
    delivered = rig.relay.count()
    rig.processes.worker("worker-1")
    took, tally = finish(rig, period, people, "the run complete within 5 minutes of the SIGKILL")
    # How long before the kill the relay took the first copy of each message sent twice:
    # a fraction of a second for a message in flight.
    first: dict[str, float] = {}
    for accepted in rig.relay.log():
        first.setdefault(accepted.recipient, accepted.at)
    ages = sorted(killed - first[recipient] for recipient in tally.twice())
    rig.report(
        subscribers=len(people),
        delivered_at_kill=delivered,
        duplicates=tally.duplicates,
        duplicates_taken_before_kill=f"{ages[0]:.2f}-{ages[-1]:.2f} s" if ages else "-",
        seconds_to_complete=took,
    )
    assert_one_each(rig, tally, extra=lambda _: 1)
    assert_all_sent(rig, {"daily:sent": len(people)})


def test_the_broker_restarted_empty_mid_run(rig: Rig, schedule: Schedule) -> None:
    """Redis killed at 30% and started again with nothing in it: the chunks it held are
    lost; the database still owes them, and the run completes within 5 minutes."""
    rig.scenario = "Redis restarted empty at 30%"
    period, people = daily_run(rig, schedule)
    rig.start()
    wait_delivered(rig, 0.3, len(people))
    rig.redis.restart_empty()
    took, tally = finish(
        rig, period, people, "the run complete within 5 minutes of the broker restart"
    )
    rig.report(
        subscribers=len(people),
        duplicates=tally.duplicates,
        seconds_to_complete=took,
    )
    assert_one_each(rig, tally, extra=lambda _: 1)
    assert_all_sent(rig, {"daily:sent": len(people)})


# Three attempts a second or two apart: an outage of OUTAGE seconds outlasts every retry
# of that schedule, were a refusal the relay gives everyone to count as an attempt.
FEW_ATTEMPTS = {"DIGEST_SEND_ATTEMPTS": "3", "DIGEST_RETRY_BACKOFF_MAX_SECONDS": "2"}
OUTAGE = 15.0


@pytest.mark.parametrize(
    ("at", "reply"),
    [(MAIL, "421 4.3.2 Service not available, closing channel"), (RCPT, "451 4.3.0 Try later")],
    ids=["421-at-MAIL", "451-at-RCPT"],
)
def test_the_relay_refuses_everyone_for_a_while(
    rig: Rig, schedule: Schedule, at: str, reply: str
) -> None:
    """The relay refuses everything from 20% of the run on, for longer than all the
    retries the send schedule has, then recovers: all delivered once, nobody suppressed
    and no soft bounce counted (it was the relay's trouble, not the recipients')."""
    rig.scenario = f"relay {reply[:3]} at {at} for {OUTAGE:g} s"
    rig.env.update(FEW_ATTEMPTS)
    period, people = daily_run(rig, schedule)
    rig.start()
    wait_delivered(rig, 0.2, len(people))
    rig.relay.fail(at, reply)
    wait_for(lambda: bool(rig.relay.replies), 30, "the relay to refuse someone", rig.evidence)
    time.sleep(OUTAGE)
    rig.relay.recover()
    refusals = sum(rig.relay.replies.values())
    took, tally = finish(
        rig, period, people, "the run complete within 5 minutes of the relay's recovery"
    )
    states = subscriber_states(rig.database_url)
    rig.report(
        subscribers=len(people),
        refusals=refusals,
        duplicates=tally.duplicates,
        seconds_to_complete_after_recovery=took,
        subscribers_by_state=dict(states),
    )
    assert_one_each(rig, tally)
    assert_all_sent(rig, {"daily:sent": len(people)})
    assert states == {"active": len(people)}, rig.evidence()


def test_refused_recipients_fail_and_are_suppressed(rig: Rig, schedule: Schedule) -> None:
    """550 for some recipients: those fail at once and are suppressed; the rest get one."""
    rig.scenario = "550 for 4% of recipients"
    period, people = daily_run(rig, schedule)
    refused = people[::25]
    for email in refused:
        rig.relay.refuse[email] = "550 5.1.1 No such user"
    rig.start()
    reached = sorted(set(people) - set(refused))
    took, tally = finish(rig, period, reached, "the run complete")
    rig.report(
        subscribers=len(people),
        refused=len(refused),
        duplicates=tally.duplicates,
        seconds_to_complete=took,
    )
    assert_one_each(rig, tally)
    assert_all_sent(rig, {"daily:sent": len(reached), "daily:failed": len(refused)})
    states = subscriber_states(rig.database_url)
    assert states == {"active": len(reached), "suppressed": len(refused)}, rig.evidence()
    with session_scope(rig.database_url) as session:
        suppressed = session.scalars(
            select(Subscriber.email).where(Subscriber.status == "suppressed")
        ).all()
    assert sorted(suppressed) == sorted(refused)


HANG = 8.0  # four SMTP timeouts (faults.SHORT)


@pytest.mark.parametrize("at", [MAIL, DATA], ids=["before-DATA", "after-DATA"])
def test_the_relay_hangs_after_accepting_the_connection(
    rig: Rig, schedule: Schedule, at: str
) -> None:
    """From 20% of the run on the relay takes the connection and then says nothing, at
    MAIL (before the message) or after the message's data, for HANG seconds: the sends
    time out, are tried again, and everyone gets their digest; a message the relay took
    but never answered for may come twice, the same message, and nothing else may."""
    rig.scenario = f"relay hangs {'before' if at == MAIL else 'after'} DATA for {HANG:g} s"
    period, people = daily_run(rig, schedule)
    rig.start()
    wait_delivered(rig, 0.2, len(people))
    rig.relay.fail(at, None, HANG)
    took, tally = finish(
        rig,
        period,
        people,
        "the run complete within 5 minutes of the hang's end",
        seconds=RECOVERY_SECONDS + HANG,
    )
    hung = [a.recipient for a in rig.relay.hung]
    rig.report(
        subscribers=len(people),
        hangs=sum(rig.relay.replies.values()),
        taken_but_unanswered=len(hung),
        duplicates=tally.duplicates,
        seconds_to_complete_from_hang_start=took,
    )
    assert_one_each(rig, tally, extra=hung.count)
    assert_all_sent(rig, {"daily:sent": len(people)})


def test_the_scheduler_was_down_over_the_daily_time(rig: Rig, schedule: Schedule) -> None:
    """The scheduler was down over the daily time and for two hours of immediate periods
    with changes in four of them. Started again (and once more after that), it has the
    missed daily run done once, and immediate subscribers get one digest for the gap."""
    rig.scenario = "scheduler down over 08:00 and 2 h of immediate periods"
    daily = latest(Frequency.DAILY, schedule)
    immediate = latest(Frequency.IMMEDIATE, schedule)
    gap_start = immediate.end - timedelta(hours=2)
    add_history(
        rig.database_url,
        schedule,
        {
            Frequency.DAILY: daily.start,
            Frequency.WEEKLY: latest(Frequency.WEEKLY, schedule).end,
            Frequency.IMMEDIATE: gap_start,
        },
    )
    gap_changes = [gap_start + timedelta(minutes=10 + 30 * n) for n in range(4)]
    add_changes(rig.database_url, [daily.start + timedelta(hours=1), *gap_changes])
    daily_people = add_subscribers(rig.database_url, Frequency.DAILY, 40)
    immediate_people = add_subscribers(rig.database_url, Frequency.IMMEDIATE, 40)
    began = time.monotonic()
    rig.start()
    wait_for(
        lambda: rig.run_of(daily) is not None, 60, "the missed daily run started", rig.evidence
    )
    rig.processes.stop("scheduler")
    rig.processes.scheduler()

    def caught_up() -> bool:
        with session_scope(rig.database_url) as session:
            runs = session.execute(
                select(DigestRun.period_end, DigestRun.status).where(
                    DigestRun.frequency == Frequency.IMMEDIATE, DigestRun.period_end > gap_start
                )
            ).all()
        return (
            bool(runs)
            and all(s == RunStatus.COMPLETE for _, s in runs)
            and max(end for end, _ in runs) >= immediate.end
        )

    rig.wait_complete(daily, RECOVERY_SECONDS, "the missed daily run complete")
    wait_for(caught_up, RECOVERY_SECONDS, "the immediate gap caught up", rig.evidence)
    took = time.monotonic() - began
    rig.settle()
    tally = rig.tally([*daily_people, *immediate_people])
    with session_scope(rig.database_url) as session:
        daily_runs = session.scalar(
            select(func.count())
            .select_from(DigestRun)
            .where(DigestRun.frequency == Frequency.DAILY, DigestRun.period_end > daily.start)
        )
        immediate_runs = session.scalar(
            select(func.count())
            .select_from(DigestRun)
            .where(DigestRun.frequency == Frequency.IMMEDIATE, DigestRun.period_end > gap_start)
        )
        items = session.execute(
            select(Subscriber.email, func.count(), func.sum(Delivery.item_count))
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .join(DigestRun, DigestRun.id == Delivery.run_id)
            .where(DigestRun.frequency == Frequency.IMMEDIATE, Delivery.status == MailStatus.SENT)
            .group_by(Subscriber.email)
        ).all()
    rig.report(
        daily_runs_for_the_missed_day=daily_runs,
        immediate_runs_for_the_gap=immediate_runs,
        immediate_mails=sum(len(tally.copies.get(e, [])) for e in immediate_people),
        immediate_subscribers=len(immediate_people),
        seconds_from_start_to_all_complete=took,
    )
    assert daily_runs == 1, rig.evidence()
    assert_one_each(rig, tally)
    # The one digest of the gap holds all its changes.
    assert {(email, n, total) for email, n, total in items} == {
        (email, 1, len(gap_changes)) for email in immediate_people
    }, rig.evidence()


CUT = 20.0


def test_the_database_away_for_20_seconds_mid_run(rig: Rig, schedule: Schedule) -> None:
    """Every connection to PostgreSQL dropped at 30% and refused for 20 s: the relay
    never failed, so every subscriber has exactly one mail (an outcome that could not be
    recorded is kept and recorded later, never sent again), and the run completes within
    5 minutes of the database coming back."""
    rig.scenario = f"PostgreSQL away for {CUT:g} s at 30%"
    period, people = daily_run(rig, schedule)
    rig.start()
    wait_delivered(rig, 0.3, len(people))
    rig.proxy.cut()
    cut_at = rig.relay.count()
    time.sleep(CUT)
    during = rig.relay.count() - cut_at
    rig.proxy.restore()
    took, tally = finish(
        rig, period, people, "the run complete within 5 minutes of the database's return"
    )
    rig.report(
        subscribers=len(people),
        sent_while_away=during,
        duplicates=tally.duplicates,
        seconds_to_complete_after_return=took,
    )
    assert_one_each(rig, tally)
    assert_all_sent(rig, {"daily:sent": len(people)})
