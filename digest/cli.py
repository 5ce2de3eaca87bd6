"""The `digest` command: run the service, manage sources, subscribers and announcements, send."""

from __future__ import annotations

import logging
import signal
import threading
import time

import click
from sqlalchemy import func, select

from digest.commands.common import (
    current_settings,
    database_faults,
    fail,
    known_topics,
    local,
    migrating,
    parse_at,
    require_current_schema,
)
from digest.commands.subscribers import subscribers
from digest.settings import Settings
from subscribers.models import Frequency


class DigestGroup(click.Group):
    """The `digest` command group: a database that cannot be used is one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        with database_faults(ctx):
            return super().invoke(ctx)


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Veiledervarsel: watches guidance sites and mails digests of what changed."""


# --- running --------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Address to listen on (DIGEST_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on (DIGEST_PORT).")
def run(host: str | None, port: int | None) -> None:
    """Run web app, scheduler and a worker in one process (the embedded default)."""
    import dramatiq
    import uvicorn

    from digest.migrate import upgrade
    from digest.scheduler import Scheduler
    from digest.web.app import create_app

    settings = current_settings()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with migrating():
        upgrade(settings.database_url)
    _sync_sources(settings, allow_empty=False, refused_is_fatal=False)
    from digest import actors

    worker = dramatiq.Worker(actors.broker, worker_threads=2)
    worker.start()
    scheduler = Scheduler(settings, actors.ActorEnqueuer())
    thread = threading.Thread(target=scheduler.run_forever, name="scheduler", daemon=True)
    thread.start()
    mail = (
        settings.smtp_url.split("@")[-1] if settings.smtp_url else f"outbox {settings.outbox_dir}"
    )
    click.echo(
        f"Veiledervarsel on http://{host or settings.host}:{port or settings.port} "
        f"(database {settings.database_url.split('://')[0]}, mail to {mail}); Ctrl-C stops"
    )
    try:
        uvicorn.run(
            create_app(settings),
            host=host or settings.host,
            port=port or settings.port,
            log_level="info",
        )
    finally:
        scheduler.stop()
        thread.join(timeout=5)
        worker.stop(timeout=10_000)
        click.echo("stopped")


@main.command()
@click.option("--host", default=None, help="Address to listen on (DIGEST_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on (DIGEST_PORT or $PORT).")
def web(host: str | None, port: int | None) -> None:
    """Serve the web app only (the Procfile's web process)."""
    import uvicorn

    from digest.web.app import create_app

    settings = current_settings()
    require_current_schema(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        proxy_headers=True,
    )


@main.command()
def scheduler() -> None:
    """Enqueue due collections and digest runs for the workers (the Procfile's scheduler)."""
    from digest import actors
    from digest.scheduler import Scheduler

    settings = current_settings()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.broker_url.startswith("memory"):
        fail(
            "the scheduler needs a shared broker (DIGEST_BROKER_URL=redis://… or amqp://…); "
            "on the embedded default use `digest run`"
        )
    require_current_schema(settings)
    loop = Scheduler(settings, actors.ActorEnqueuer())
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        loop.stop()


# --- database -------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from digest.migrate import upgrade

    settings = current_settings()
    with migrating():
        upgrade(settings.database_url)
    click.echo("database is up to date")


# --- sources --------------------------------------------------------------------------------


@main.group()
def sources() -> None:
    """The watched sites."""


def _sync_sources(settings: Settings, allow_empty: bool, refused_is_fatal: bool = True) -> None:
    from digest.db import session_scope
    from digest.watch.sources import SourcesFileError, load_sources, sync_sources

    try:
        catalogue = load_sources(settings.sources_file)
    except SourcesFileError as exc:
        fail(str(exc))
    if not catalogue.sources and not allow_empty:
        # Most likely the wrong or a truncated file: syncing it would disable every source.
        refusal = (
            f"{settings.sources_file} has no [[source]]: not synced, since that would disable "
            "every source; `digest sources sync --allow-empty` does it if that is meant"
        )
        if refused_is_fatal:
            fail(refusal)
        click.echo(f"warning: {refusal}", err=True)
        return
    with session_scope(settings.database_url) as session:
        report = sync_sources(session, catalogue.sources)
    click.echo(
        f"sources: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.disabled)} disabled, {len(report.unchanged)} unchanged"
    )
    for key in report.disabled:
        click.echo(f"  disabled {key} (no longer in {settings.sources_file})")


@sources.command("sync")
@click.option(
    "--allow-empty", is_flag=True, help="Sync a file without [[source]] (disables them all)."
)
def sources_sync(allow_empty: bool) -> None:
    """Load the sources file into the database."""
    _sync_sources(current_settings(), allow_empty)


@sources.command("list")
def sources_list() -> None:
    """Each source with its health."""
    from digest.db import session_scope
    from digest.models import Item, Source

    settings = current_settings()
    tz = settings.tz
    with session_scope(settings.database_url) as session:
        counts = dict(
            session.execute(select(Item.source_id, func.count()).group_by(Item.source_id)).all()
        )
        rows = session.scalars(select(Source).order_by(Source.key)).all()
        if not rows:
            click.echo("no sources; run `digest sources sync`")
            return
        click.echo(
            f"{'KEY':28} {'KIND':8} {'STATUS':9} {'HTTP':4} {'LAST CHECK':16} "
            f"{'LAST SUCCESS':16} {'FAILS':5} {'ITEMS':5} {'NEXT CHECK':16} ERROR / WARNING"
        )
        for s in rows:
            status = s.status if s.enabled else "disabled"
            click.echo(
                f"{s.key:28} {s.kind:8} {status:9} {s.http_status or '-'!s:4} "
                f"{local(s.last_checked_at, tz):16} {local(s.last_success_at, tz):16} "
                f"{s.consecutive_failures:<5} {counts.get(s.id, 0):<5} "
                f"{local(s.next_check_at, tz) if s.enabled else '-':16} "
                f"{s.error or ''}{'; ' if s.error and s.warning else ''}"
                f"{'warning: ' + s.warning if s.warning else ''}"
            )


@sources.command("discover")
@click.argument("url")
def sources_discover(url: str) -> None:
    """Look at a site and print how it could be watched, with a ready [[source]] entry."""
    from digest.watch.collect import make_fetcher
    from digest.watch.discover import discover, suggest

    settings = current_settings()
    if not url.startswith(("http://", "https://")):
        url = "https://" + url
    with make_fetcher(settings) as fetcher:
        found = discover(fetcher, url)
    click.echo(f"site:      {found.final_url or url}  {found.title}")
    for note in found.notes:
        click.echo(f"note:      {note}")
    click.echo("feeds:     " + (", ".join(found.feeds) or "none found"))
    click.echo("sitemaps:  " + (", ".join(found.sitemaps) or "none found"))
    if found.index_pattern:
        click.echo(f"index:     links matching {found.index_pattern}, e.g.")
        for example in found.index_examples:
            click.echo(f"             {example}")
    else:
        click.echo("index:     no family of article links found")
    click.echo(f"headings:  {found.h2_count} h2 heading(s) on the page")
    click.echo("\n" + suggest(found))


# --- collect --------------------------------------------------------------------------------


@main.command()
@click.option("--source", "source_key", help="Collect only this source (its key).")
@click.option("--at", help="Record what is found as detected at this ISO time.")
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Processes to collect in; the sources of one host share a process.",
)
def collect(source_key: str | None, at: str | None, jobs: int) -> None:
    """Collect sources now and wait for them (all enabled ones, or one)."""
    from urllib.parse import urlsplit

    from digest.db import session_scope
    from digest.models import Source
    from digest.watch.collect import collect_sources
    from subscribers.base import utcnow

    settings = current_settings()
    when = parse_at(at, settings.tz) or utcnow()
    with session_scope(settings.database_url) as session:
        query = select(Source.id, Source.url).where(Source.enabled.is_(True)).order_by(Source.key)
        if source_key:
            query = select(Source.id, Source.url).where(Source.key == source_key)
        sources = [(i, urlsplit(url).hostname or "") for i, url in session.execute(query)]
    if source_key and not sources:
        fail(f"no source with key {source_key!r}; see `digest sources list`")
    failures = 0
    for outcome in collect_sources(settings, sources, when, jobs):
        failures += not outcome.ok
        click.echo(outcome.describe())
    if failures:
        click.echo(f"{failures} source(s) failed; see `digest sources list`", err=True)


# --- subscribers ----------------------------------------------------------------------------


# --- send -----------------------------------------------------------------------------------


@main.command()
@click.argument("frequency", type=click.Choice([f.value for f in Frequency]))
@click.option("--at", help="Send the latest period that ended at or before this ISO time.")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send nothing.")
@click.option("--wait", is_flag=True, help="With a shared broker: wait until the run is done.")
@click.option("--timeout", default=600, show_default=True, help="Seconds --wait waits at most.")
def send(frequency: str, at: str | None, dry_run: bool, wait: bool, timeout: int) -> None:
    """Start the digest run for the latest ended period of FREQUENCY."""
    from digest import runs
    from digest.db import session_scope
    from digest.periods import latest_period, schedule_of
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


# --- announcements --------------------------------------------------------------------------


@main.group()
def announce() -> None:
    """Editors' announcements that go on top of digests."""


@announce.command("add")
@click.option("--title", required=True)
@click.option("--body", default="", help="Markdown.")
@click.option("--link", default=None)
@click.option("--topic", "topics", multiple=True, help="A topic key; repeat for more. None = all.")
@click.option("--from", "start", default=None, help="Publish from this ISO time (default now).")
@click.option("--until", default=None, help="Publish until this ISO time.")
@click.option("--draft", is_flag=True, help="Store it without publishing.")
def announce_add(
    title: str,
    body: str,
    link: str | None,
    topics: tuple[str, ...],
    start: str | None,
    until: str | None,
    draft: bool,
) -> None:
    """Add an announcement."""
    from digest.announcements import AnnouncementError, add_announcement
    from digest.db import session_scope

    settings = current_settings()
    known = known_topics(settings)
    unknown = sorted({t.strip().lower() for t in topics} - known)
    if unknown:
        fail(f"unknown topic(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    try:
        with session_scope(settings.database_url) as session:
            item = add_announcement(
                session,
                title=title,
                body=body,
                link=link,
                topics=topics,
                publish_from=parse_at(start, settings.tz),
                publish_until=parse_at(until, settings.tz),
                draft=draft,
            )
            click.echo(
                f"announcement {item.id} added"
                + (
                    " as a draft"
                    if draft
                    else f", published from {local(item.publish_from, settings.tz)}"
                )
            )
    except AnnouncementError as exc:
        fail(str(exc))


@announce.command("list")
def announce_list() -> None:
    """List announcements, newest first."""
    from digest.announcements import list_announcements
    from digest.db import session_scope

    settings = current_settings()
    tz = settings.tz
    with session_scope(settings.database_url) as session:
        for a in list_announcements(session):
            state = "draft" if a.draft else "published"
            topics = ",".join(a.topics) or "all topics"
            click.echo(
                f"{a.id:4} {state:9} {local(a.publish_from, tz)} → "
                f"{local(a.publish_until, tz):16} {topics:20} {a.title}"
            )


main.add_command(subscribers)

if __name__ == "__main__":
    main()
