"""`digest send`: start the digest run of the latest ended period, or show what it would send."""

from __future__ import annotations

import time

import click

from digest.commands.common import current_settings, fail, local, parse_at
from subscribers.models import Frequency


@click.command()
@click.argument("frequency", type=click.Choice([f.value for f in Frequency]))
@click.option("--at", help="Send the latest period that ended at or before this ISO time.")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send nothing.")
@click.option("--wait", is_flag=True, help="With a shared broker: wait until the run is done.")
@click.option("--timeout", default=600, show_default=True, help="Seconds --wait waits at most.")
def send(frequency: str, at: str | None, dry_run: bool, wait: bool, timeout: int) -> None:
    """Start the digest run for the latest ended period of FREQUENCY."""
    from digest.core.db import session_scope
    from digest.core.periods import latest_period, schedule_of
    from digest.delivery import runs
    from subscribers.base import utcnow

    settings = current_settings()
    tz = settings.tz
    now = utcnow()
    when = parse_at(at, tz) or now
    if when > now:
        # A run started early would be unique for its period and miss what comes later.
        fail("--at is in the future: only a period that has ended can be sent")
    period = latest_period(Frequency(frequency), when, schedule_of(settings))
    label = f"{frequency} period {local(period.start, tz)} – {local(period.end, tz)} ({tz.key})"
    if dry_run:
        with session_scope(settings.database_url) as session:
            digests = runs.preview(session, settings, period)
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
        return
    with session_scope(settings.database_url) as session:
        started = runs.start_run(session, period)
    click.echo(
        f"run {started.run_id}, {label}: " + ("started" if started.created else "already started")
    )
    if settings.broker_url.startswith("memory"):
        # No shared workers: deliver here and now.
        for chunk in started.chunks:
            report = runs.deliver_chunk(settings, started.run_id, chunk)
            for error in report.errors:
                click.echo(f"  not sent: {error}", err=True)
    else:
        from digest import actors

        if started.created:
            actors.enqueue_chunks(started)  # after the commit above
        if wait:
            deadline = time.monotonic() + timeout
            while True:
                with session_scope(settings.database_url) as session:
                    done = runs.complete_if_done(session, started.run_id)
                if done:
                    break
                if time.monotonic() > deadline:
                    fail(f"run {started.run_id} not complete after {timeout} s")
                time.sleep(0.5)
        else:
            click.echo("enqueued for the workers")
            return
    with session_scope(settings.database_url) as session:
        counts = runs.run_counts(session, started.run_id)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no subscribers"
    click.echo(f"run {started.run_id}: {summary}")
