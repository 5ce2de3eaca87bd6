"""`digest announce …`: editors' announcements from the command line."""

from __future__ import annotations

import click

from digest.commands.common import current_settings, fail, known_topics, local, parse_at


@click.group()
def announce() -> None:
    """Editors' announcements that go on top of digests."""


@announce.command("add")
@click.option("--title", required=True)
@click.option("--body", default="", help="Markdown.")
@click.option("--link", default=None)
@click.option("--topic", "topics", multiple=True, help="A topic key; repeat for more. None = all.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    help="Only for subscribers in this role (e.g. krisesenter); repeat for more. None = all.",
)
@click.option(
    "--municipality",
    "municipalities",
    multiple=True,
    help="Only for subscribers in this municipality (number or name); repeat. None = all.",
)
@click.option("--from", "start", default=None, help="Publish from this ISO time (default now).")
@click.option("--until", default=None, help="Publish until this ISO time.")
@click.option("--pinned", is_flag=True, help="Show it before the other announcements.")
@click.option(
    "--immediately",
    is_flag=True,
    help="Send it with the next immediate run, to daily and weekly subscribers too.",
)
@click.option("--draft", is_flag=True, help="Store it without publishing.")
def announce_add(
    title: str,
    body: str,
    link: str | None,
    topics: tuple[str, ...],
    roles: tuple[str, ...],
    municipalities: tuple[str, ...],
    start: str | None,
    until: str | None,
    pinned: bool,
    immediately: bool,
    draft: bool,
) -> None:
    """Add an announcement."""
    from digest.core.db import session_scope
    from digest.delivery.announcements import add_announcement, snapshot
    from digest.editors import audit
    from subscribers.municipalities import find_municipality

    settings = current_settings()
    known = known_topics(settings, asked=bool(topics))
    unknown = sorted({t.strip().lower() for t in topics} - known)
    if unknown:
        fail(f"unknown topic(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    numbers = []
    for given in municipalities:
        found = find_municipality(given)
        if found is None:
            fail(f"unknown municipality: {given}")
        numbers.append(found.number)
    # A refused announcement (an AnnouncementError) is explained by `explained_errors`.
    with session_scope(settings.database_url) as session:
        item = add_announcement(
            session,
            title=title,
            body=body,
            link=link,
            topics=topics,
            roles=roles,
            municipalities=numbers,
            publish_from=parse_at(start, settings.tz),
            publish_until=parse_at(until, settings.tz),
            pinned=pinned,
            send_immediately=immediately,
            draft=draft,
        )
        # In the log beside the pages' and the API's, as from the command line.
        audit.record(
            session,
            None,
            "announcement_create",
            "announcement",
            item.id,
            after={**snapshot(item), "via": "cli"},
        )
        click.echo(
            f"announcement {item.id} added"
            + (
                " as a draft"
                if draft
                else f", published from {local(item.publish_from, settings.tz)}"
            )
        )


@announce.command("list")
def announce_list() -> None:
    """List announcements, newest first."""
    from digest.core.db import session_scope
    from digest.delivery.announcements import list_announcements

    settings = current_settings()
    tz = settings.tz
    with session_scope(settings.database_url) as session:
        for a in list_announcements(session):
            state = a.status.value
            topics = ",".join(a.topics) or "all topics"
            targets = ",".join([*a.roles, *a.municipalities])
            flags = ("pinned " if a.pinned else "") + ("immediately " if a.send_immediately else "")
            click.echo(
                f"{a.id:4} {state:9} {local(a.publish_from, tz)} → "
                f"{local(a.publish_until, tz):16} {topics:20} "
                f"{(targets + ' ') if targets else ''}{flags}{a.title}"
            )
