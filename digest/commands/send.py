"""`digest send`: start the digest run of the latest ended period, or show what it would send;
with `--wait`, follow the workers' progress until the run is complete."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from digest.commands.common import current_settings, fail, local, parse_at
from subscribers.models import Frequency

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from digest.core.settings import Settings
    from digest.delivery.history import RunCounts
    from digest.delivery.runs import StartedRun
    from digest.mail.compose import Digest

# The exit status when the wait ends (Ctrl-C, --timeout) before the run is complete.
NOT_COMPLETE = 3
# Without a terminal (a log, a pipe), a progress line this often rather than a redraw.
LOG_EVERY_SECONDS = 5.0


@click.command()
@click.argument("frequency", type=click.Choice([f.value for f in Frequency]))
@click.option("--at", help="Send the latest period that ended at or before this ISO time.")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send nothing.")
@click.option(
    "--wait",
    is_flag=True,
    help="With a shared broker: show progress until the run is complete (Ctrl-C stops "
    "the waiting, not the run).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0), help="Seconds --wait waits at most (no limit)."
)
def send(frequency: str, at: str | None, dry_run: bool, wait: bool, timeout: float | None) -> None:
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
    if settings.broker_url.startswith("memory"):
        _work_here(sessions, started, settings)
    elif not wait:
        _enqueue(started)
        click.echo("enqueued for the workers")
        return
    else:
        _enqueue(started)
        _follow(sessions, started.run_id, timeout)
    _show_outcome(sessions, started.run_id)


def _enqueue(started: StartedRun) -> None:
    """Hand a run this command created to the workers (after the commit that created it);
    one that was there already is theirs, and the sweep's, already."""
    from digest import actors

    actors.enqueue_chunks(started)


def _work_here(sessions: sessionmaker[Session], started: StartedRun, settings: Settings) -> None:
    """No shared workers (the in-memory broker): this process is the worker, and does what
    the run still owes, whether it started it or found it."""
    from datetime import timedelta

    from digest import actors
    from digest.delivery.runs import StartedRun, pending_chunks
    from subscribers.base import utcnow

    if not started.created:
        with sessions.begin() as session:
            chunks = pending_chunks(
                session,
                started.run_id,
                utcnow(),
                settings.chunk_size,
                timedelta(seconds=settings.stale_claim_seconds),
            )
        started = StartedRun(started.run_id, False, chunks)
    actors.enqueue_chunks(started)
    actors.work_here()


def _follow(sessions: sessionmaker[Session], run_id: int, timeout: float | None) -> None:
    """Show the run's progress until it is complete; Ctrl-C or the timeout end the waiting
    (status NOT_COMPLETE), and the workers go on."""
    from digest.delivery.runs import RunNotComplete, wait_for_run

    progress = Progress(run_id, sys.stdout.isatty())
    try:
        wait_for_run(sessions, run_id, progress.show, timeout)
    except (KeyboardInterrupt, RunNotComplete) as stopped:
        progress.close()
        why = "interrupted" if isinstance(stopped, KeyboardInterrupt) else str(stopped)
        fail(
            f"stopped waiting ({why}); run {run_id} goes on with the workers: "
            "`digest send --wait` again follows it",
            NOT_COMPLETE,
        )
    progress.close()


class Progress:
    """One line about a run: sent, skipped and failed of the total, the rate since the
    waiting began, and the time left at that rate; redrawn in place on a terminal, else
    printed every LOG_EVERY_SECONDS (and when the counts first and last change)."""

    def __init__(self, run_id: int, tty: bool) -> None:
        self.run_id = run_id
        self.tty = tty
        self.began: tuple[float, int] | None = None  # (when, settled then)
        self.printed_at = -LOG_EVERY_SECONDS
        self.last = ""

    def show(self, counts: RunCounts) -> None:
        now = time.monotonic()
        if self.began is None:
            self.began = (now, counts.done)
        line = progress_line(self.run_id, counts, now - self.began[0], counts.done - self.began[1])
        if self.tty:
            click.echo(f"\r\x1b[K{line}", nl=False)
        elif line != self.last and now - self.printed_at >= LOG_EVERY_SECONDS:
            click.echo(line)
            self.printed_at = now
        self.last = line

    def close(self) -> None:
        if self.tty:
            click.echo("")
        elif self.last:
            click.echo(self.last)  # the counts as the waiting ended


def progress_line(run_id: int, counts: RunCounts, seconds: float, settled: int) -> str:
    """`run 7: 1200 sent, 3 skipped, 1 failed of 5000 (24%), 140/s, 27 s left`; the
    rate and time left once something was settled while we watched."""
    total = counts.total
    share = f" ({100 * counts.done // total}%)" if total else ""
    line = (
        f"run {run_id}: {counts.sent} sent, {counts.skipped} skipped, {counts.failed} failed"
        f" of {total}{share}"
    )
    if settled > 0 and seconds > 0:
        rate = settled / seconds
        left = (total - counts.done) / rate
        line += f", {rate:.0f}/s, {_duration(left)} left"
    return line


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


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
