"""`digest subscribers …`: add, list, remove, import and export the roster, and GDPR requests."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.commands.common import current_settings, fail, known_topics
from digest.core.settings import Settings
from subscribers.models import Channel, Frequency, Language, NoticeKind, Role, Status
from subscribers.roster import escaped

if TYPE_CHECKING:  # the mail pipeline is imported only by the commands that send
    from digest.delivery.notices import NoticeReport

MAX_ROSTER_BYTES = 20_000_000


@click.group()
def subscribers() -> None:
    """The people who get digests."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="")
@click.option("--municipality", default="", help="Name or number.")
@click.option("--role", default="", type=click.Choice(["", *[r.value for r in Role]]))
@click.option(
    "--frequency",
    default="daily",
    show_default=True,
    type=click.Choice([f.value for f in Frequency]),
)
@click.option("--topic", "topics", multiple=True, help="A topic key; repeat for more. None = all.")
@click.option("--language", default="nb", type=click.Choice([lang.value for lang in Language]))
@click.option("--confirmed", is_flag=True, help="Active at once (consent obtained elsewhere).")
@click.option("--basis", default="", help="The legal basis or how consent was given.")
def subscribers_add(
    email: str,
    name: str,
    municipality: str,
    role: str,
    frequency: str,
    topics: tuple[str, ...],
    language: str,
    confirmed: bool,
    basis: str,
) -> None:
    """Add a subscriber: pending, with a confirmation mail, unless --confirmed."""
    from digest.core.db import session_scope
    from digest.delivery.notices import queue_notice
    from subscribers.choices import choices
    from subscribers.signups import add_subscriber, latest_request

    settings = current_settings()
    notice_id: int | None = None
    chosen = choices(
        name=name,
        municipality=municipality,
        role=role,
        frequency=frequency,
        topics=topics,
        language=language,
        known_topics=known_topics(settings, asked=bool(topics)),
    )
    with session_scope(settings.database_url) as session:
        subscriber = add_subscriber(
            session, email, chosen, confirmed=confirmed, channel=Channel.ADMIN, basis=basis
        )
        if not confirmed:
            request = latest_request(session, subscriber)
            notice = queue_notice(session, subscriber, NoticeKind.CONFIRM, request)
            notice_id = notice.id if notice else None
        click.echo(f"added {subscriber.email} ({subscriber.status}, {subscriber.frequency})")
    if notice_id is not None:
        sent = _send_notices(settings, [notice_id])
        click.echo(
            "confirmation mail sent"
            if sent.sent
            else f"confirmation mail not sent yet: {'; '.join(sent.errors) or 'queued'}"
        )


@subscribers.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status]))
def subscribers_list(status: str | None) -> None:
    """List subscribers."""
    from digest.core.db import session_scope
    from subscribers.people import list_subscribers

    settings = current_settings()
    with session_scope(settings.database_url) as session:
        rows = list_subscribers(session, Status(status) if status else None)
        for s in rows:
            topics = ",".join(s.topics) or "all topics"
            name = escaped(s.name)  # rows from before names were cleaned on the way in
            click.echo(f"{s.email:40} {s.status:13} {s.frequency:10} {topics:30} {name}")
        click.echo(f"{len(rows)} subscriber(s)")


@subscribers.command("remove")
@click.argument("email")
def subscribers_remove(email: str) -> None:
    """Delete a subscriber and their deliveries (see also `erase`)."""
    from digest.core.db import session_scope
    from subscribers.people import remove_subscriber

    settings = current_settings()
    with session_scope(settings.database_url) as session:
        remove_subscriber(session, email)
    click.echo(f"removed {email}")


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--confirmed",
    is_flag=True,
    help="Make them active at once, without a confirmation mail (needs --basis).",
)
@click.option("--basis", default="", help="The legal basis for --confirmed, kept as consent.")
@click.option("--dry-run", is_flag=True, help="Check and report; store and send nothing.")
def subscribers_import(file: Path, confirmed: bool, basis: str, dry_run: bool) -> None:
    """Import a roster CSV (email, name, municipality, role, frequency, topics, language)."""
    from digest.core.db import session_scope
    from digest.delivery.notices import queue_confirmations
    from subscribers.roster import import_roster

    settings = current_settings()
    if confirmed and not basis.strip():
        fail("--confirmed needs --basis: say on what basis these people get mail")
    rows = _roster_rows(file)
    known = known_topics(settings, asked=False)  # a row naming a topic is refused, with why
    with session_scope(settings.database_url) as session:
        report = import_roster(
            session,
            settings.secret_key,
            rows,
            known_topics=known,
            confirmed=confirmed,
            basis=basis.strip(),
        )
        if dry_run:
            session.rollback()
        notice_ids = [] if dry_run else queue_confirmations(session, report)
    for row in report.rows:
        click.echo(row.describe())
    click.echo(f"{'dry run, nothing stored: ' if dry_run else ''}{report.totals()}")
    if notice_ids:
        sent = _send_notices(settings, notice_ids)
        click.echo(f"confirmation mails: {sent.sent} sent, {sent.failed} failed")


def _send_notices(settings: Settings, notice_ids: list[int]) -> NoticeReport:
    """Send the notices just committed, from this process, as a worker would."""
    from digest.core.db import get_sessionmaker
    from digest.delivery.notices import send_notices
    from digest.mail.mailer import make_transport

    return send_notices(
        get_sessionmaker(settings.database_url),
        make_transport(settings.smtp_url, settings.outbox_dir),
        settings,
        notice_ids,
    )


def _roster_rows(file: Path) -> list[tuple[int, dict[str, str]]]:
    """The rows of a roster file; one that is too large or not a roster stops the command."""
    from subscribers.roster import RosterError, read_roster

    if file.stat().st_size > MAX_ROSTER_BYTES:
        fail(f"{file} is larger than {MAX_ROSTER_BYTES // 1_000_000} MB; split it")
    try:
        return read_roster(file.read_bytes())
    except RosterError as exc:
        # The file's name, and what became of it, on top of what the central line says.
        fail(f"{file}: {exc}; nothing was imported")


@subscribers.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def subscribers_export(file: Path | None) -> None:
    """Write the roster as CSV to FILE, or to standard output."""
    from digest.core.db import session_scope
    from subscribers.people import list_subscribers
    from subscribers.roster import export_roster

    settings = current_settings()
    with session_scope(settings.database_url) as session:
        text = export_roster(list_subscribers(session))
    if file is None:
        sys.stdout.write(text)
    else:
        file.write_text(text, encoding="utf-8-sig")  # with a BOM, as Excel wants
        click.echo(f"wrote {file}")


@subscribers.command("show")
@click.argument("email")
def subscribers_show(email: str) -> None:
    """Everything stored about one person, as JSON (a GDPR access request)."""
    from digest.core.db import session_scope
    from digest.delivery.privacy import person_export
    from subscribers.people import get_by_email

    settings = current_settings()
    with session_scope(settings.database_url) as session:
        data = person_export(session, get_by_email(session, email))
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask first.")
def subscribers_erase(email: str, yes: bool) -> None:
    """Delete all personal data about EMAIL; keep only a salted hash so it is never mailed."""
    from digest.core.db import session_scope
    from subscribers.privacy import erase

    settings = current_settings()
    if not yes and not click.confirm(f"Erase everything about {email}?", default=False):
        fail("nothing erased")
    with session_scope(settings.database_url) as session:
        existed = erase(session, settings.secret_key, email)
    click.echo(
        f"erased {email}"
        if existed
        else f"no data about {email}; its hash is on the suppression list"
    )


@subscribers.command("purge")
def subscribers_purge() -> None:
    """Erase people who unsubscribed longer ago than DIGEST_RETENTION_DAYS, and delete
    sign-ups nobody confirmed once their link has expired (the recovery sweep does both)."""
    from digest.core.db import session_scope
    from subscribers.base import utcnow
    from subscribers.privacy import purge_unconfirmed, purge_unsubscribed

    settings = current_settings()
    now = utcnow()
    with session_scope(settings.database_url) as session:
        count = purge_unsubscribed(
            session, settings.secret_key, now - timedelta(days=settings.retention_days)
        )
        unconfirmed = purge_unconfirmed(session, settings.secret_key, now)
    click.echo(f"erased {count} person(s) who left more than {settings.retention_days} days ago")
    click.echo(
        f"deleted {unconfirmed.requests} expired sign-up request(s) and "
        f"{unconfirmed.people} unconfirmed address(es)"
    )
