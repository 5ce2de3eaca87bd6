"""`digest sources …` and `digest collect`: the watched sites and collecting them now."""

from __future__ import annotations

import click

from digest.commands.common import current_settings, local, parse_at
from digest.core.settings import Settings


@click.group()
def sources() -> None:
    """The watched sites."""


def sync_sources_file(settings: Settings, allow_empty: bool, refused_is_fatal: bool = True) -> None:
    from digest.core.db import session_scope
    from digest.watch.sources import EmptySourcesFile, load_sources, sync_sources

    catalogue = load_sources(settings.sources_file)
    if not catalogue.sources and not allow_empty:
        refusal = EmptySourcesFile(settings.sources_file)
        if refused_is_fatal:
            raise refusal
        click.echo(f"warning: {refusal}", err=True)
        return
    with session_scope(settings.database_url) as session:
        report = sync_sources(session, catalogue)
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
    sync_sources_file(current_settings(), allow_empty)


@sources.command("list")
def sources_list() -> None:
    """Each source with its health."""
    from digest.core.db import session_scope
    from digest.watch.overview import source_health

    settings = current_settings()
    tz = settings.tz
    with session_scope(settings.database_url) as session:
        rows = source_health(session)
    if not rows:
        click.echo("no sources; run `digest sources sync`")
        return
    click.echo(
        f"{'KEY':28} {'KIND':8} {'STATUS':9} {'HTTP':4} {'LAST CHECK':16} "
        f"{'LAST SUCCESS':16} {'FAILS':5} {'ITEMS':5} {'NEXT CHECK':16} ERROR / WARNING"
    )
    for s in rows:
        click.echo(
            f"{s.key:28} {s.kind:8} {s.status:9} {s.http_status or '-'!s:4} "
            f"{local(s.last_checked_at, tz):16} {local(s.last_success_at, tz):16} "
            f"{s.consecutive_failures:<5} {s.items:<5} "
            f"{local(s.next_check_at, tz) if s.enabled else '-':16} "
            f"{s.error or ''}{'; ' if s.error and s.warning else ''}"
            f"{'warning: ' + s.warning if s.warning else ''}"
            # What an admin set in the web pages, which the columns above do not show.
            + (f"  [paused since {local(s.paused_at, tz)}]" if s.paused_at else "")
            + ("  [review before sending]" if s.review_before_sending else "")
        )


@sources.command("discover")
@click.argument("url")
def sources_discover(url: str) -> None:
    """Look at a site and print how it could be watched, with a ready [[source]] entry."""
    from digest.watch.discover import discover, suggest
    from digest.watch.fetch import make_fetcher

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


@click.command()
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
    from digest.core.db import session_scope
    from digest.watch.collect import collect_sources, sessions_for
    from digest.watch.selection import sources_to_collect
    from subscribers.base import utcnow

    settings = current_settings()
    when = parse_at(at, settings.tz) or utcnow()
    with session_scope(settings.database_url) as session:
        sources = sources_to_collect(session, source_key)
    failures = 0
    outcomes = collect_sources(
        sources, when, sessions=sessions_for(settings.database_url), settings=settings, jobs=jobs
    )
    for outcome in outcomes:
        failures += not outcome.ok
        click.echo(outcome.describe())
    if failures:
        click.echo(f"{failures} source(s) failed; see `digest sources list`", err=True)
