"""`digest send`: start the digest run of the latest ended period, or show what it would send."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from digest.commands.common import current_settings, fail, local, parse_at
from subscribers.models import Frequency

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from digest.delivery.runs import StartedRun
    from digest.mail.compose import Digest


@click.command()
@click.argument("frequency", type=click.Choice([f.value for f in Frequency]))
@click.option("--at", help="Send the latest period that ended at or before this ISO time.")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send nothing.")
@click.option("--wait", is_flag=True, help="With a shared broker: wait until the run is done.")
@click.option("--timeout", default=600, show_default=True, help="Seconds --wait waits at most.")
def send(frequency: str, at: str | None, dry_run: bool, wait: bool, timeout: int) -> None:
    """Start the digest run for the latest ended period of FREQUENCY."""
    from digest.core.db import get_sessionmaker
    from digest.core.periods import latest_period, schedule_of
    from digest.delivery import digests, runs
    from subscribers.base import utcnow

    settings = current_settings()
    sessions = get_sessionmaker(settings.database_url)
    tz = settings.tz
    now = utcnow()
    when = parse_at(at, tz) or now
    if when > now:
        # A run started early would be unique for its period and miss what comes later.
        fail("--at is in the future: only a period that has ended can be sent")
    period = latest_period(Frequency(frequency), when, schedule_of(settings))
    label = f"{frequency} period {local(period.start, tz)} – {local(period.end, tz)} ({tz.key})"
    if dry_run:
        with sessions.begin() as session:
            previews = digests.preview(session, period)
        _show_preview(label, previews)
        return
    with sessions.begin() as session:
        started = runs.start_run(session, period)
    click.echo(
        f"run {started.run_id}, {label}: " + ("started" if started.created else "already started")
    )
    if _deliver(settings.broker_url, started, sessions, wait, timeout):
        _show_outcome(sessions, started.run_id)
    else:
        click.echo("enqueued for the workers")


def _deliver(
    broker_url: str,
    started: StartedRun,
    sessions: sessionmaker[Session],
    wait: bool,
    timeout: int,
) -> bool:
    """Hand the run's chunks to the actors (after the commit that started it); True once
    they are done, False when they were left to the workers."""
    from digest import actors
    from digest.delivery.runs import wait_for_run

    if broker_url.startswith("memory"):
        actors.enqueue_chunks(started)
        actors.work_here()  # no shared workers: this process is the worker
        return True
    if started.created:  # else the workers have it already
        actors.enqueue_chunks(started)
    if wait:
        wait_for_run(sessions, started.run_id, timeout)
    return wait


def _show_outcome(sessions: sessionmaker[Session], run_id: int) -> None:
    from digest.delivery.runs import not_sent, run_counts

    with sessions.begin() as session:
        counts = run_counts(session, run_id)
        for line in not_sent(session, run_id):
            click.echo(f"  not sent: {line}", err=True)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no subscribers"
    click.echo(f"run {run_id}: {summary}")


def _show_preview(label: str, digests: list[Digest]) -> None:
    click.echo(f"dry run, {label}:")
    for d in digests:
        what = (
            "nothing new, no mail"
            if d.is_empty
            else f"{d.item_count} article(s), {len(d.announcements)} announcement(s)"
        )
        click.echo(f"  {d.recipient.email}: {what}")
        for group in d.groups:
            for item in group.items:
                click.echo(
                    f"    [{'new' if item.is_new else 'updated'}] {group.name}: {item.title}"
                )
    click.echo(f"{sum(not d.is_empty for d in digests)} of {len(digests)} would get a mail")
