# ruff: noqa: F811  (the `world` fixture is imported from tests.test_archive)
"""«Vis i nettleseren» and the archive show what the mail held: the announcements of the
reader's role and municipality, their role's announcements without narrowing when they did
not ask for it, no link at all in a daily reader's mail from an immediate run (that run's
page holds changes their own digest brings later), and a source with no topics (for
every reader) under every topic's listing, feed and embeddable list."""

from __future__ import annotations

import re

import httpx

from digest.core.settings import Settings
from tests.support.smtp import SMTPServer
from tests.test_archive import World, text_of, world  # noqa: F401  (fixture)


def _view_link(smtp: SMTPServer, address: str, base: str) -> tuple[str, str]:
    """The «Vis i nettleseren» address in the daily mail to `address`, made relative, and
    the mail's plain text."""
    mails = [
        m
        for m in smtp.inbox.to(address)
        if "oversikt" in str(m["Subject"]).lower() or "Veiledervarsel" in str(m["Subject"])
    ]
    mail = mails[-1]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    urls = re.findall(r"https?://\S+/arkiv/\S+", text)
    assert urls, text
    return urls[0].replace(base.rstrip("/"), ""), text


def test_view_in_browser_shows_the_announcements_the_mail_had(
    client: httpx.Client, world: World, smtp: SMTPServer, settings: Settings
) -> None:
    """Ola (role krisesenter, municipality 0301) got «Kun for krisesentre» and «Bare for
    Oslo» in his mail; the mail's own «Vis i nettleseren» link must show them too."""
    path, mail_text = _view_link(smtp, "ola.hemmelig.x7q@kommune-a.no", settings.base_url)
    assert "Kun for krisesentre" in mail_text
    assert "Bare for Oslo" in mail_text
    page = text_of(client.get(path).text)
    missing = [t for t in ("Kun for krisesentre", "Bare for Oslo") if t not in page]
    assert not missing, f"{path}: the web copy lacks {missing}"


def test_a_reader_with_a_role_but_not_narrowed_sees_their_role_announcement_online(
    client: httpx.Client, world: World
) -> None:
    """A reader with a role who left «Bare det som er laget for min rolle» off still gets
    announcements targeted at that role (compose.is_targeted_by); view_url drops the role
    when the reader is not narrowed, so the web copy has no such announcement."""
    from digest.core.periods import Period
    from digest.mail.compose import AnnouncementView, Recipient, compose
    from digest.mail.letter import view_url
    from subscribers.models import Frequency

    period = world.daily
    for_role = AnnouncementView(
        1, "Kun for krisesentre", "x", None, (), period.start, roles=("krisesenter",)
    )
    reader = Recipient(1, "a@b.no", "", Frequency.DAILY, ("vold",), role="krisesenter")
    digest = compose(reader, [], [for_role], Period(Frequency.DAILY, period.start, period.end))
    assert digest.announcements  # the mail holds it
    url = view_url(digest, "http://x")
    page = text_of(client.get(url.removeprefix("http://x")).text)
    assert "Kun for krisesentre" in page, url


def _immediate_world(settings: Settings) -> str:
    from datetime import UTC, datetime, timedelta

    from digest.core.archive_links import archive_path
    from digest.core.db import session_scope
    from digest.core.periods import latest_period, schedule_of
    from digest.delivery.announcements import add_announcement
    from subscribers.choices import choices
    from subscribers.models import Frequency
    from subscribers.signups import add_subscriber
    from tests.test_archive import RUN_AT, add_change, add_source, send  # noqa: F401

    schedule = schedule_of(settings)
    # A period that holds now: the announcement goes live when it is created.
    later = datetime.now(UTC) + timedelta(minutes=schedule.every_minutes)
    period = latest_period(Frequency.IMMEDIATE, later, schedule)
    with session_scope(settings.database_url) as session:
        rvts = add_source(session, "rvts", "RVTS Øst", ["vold"])
        add_change(session, rvts, "Straks-endring om vold", period.start + timedelta(minutes=1))
        add_announcement(
            session,
            title="Haster for alle",
            body="Nå.",
            publish_from=period.start,
            send_immediately=True,
        )
        for email, frequency in (("straks@k.no", "immediate"), ("daglig@k.no", "daily")):
            add_subscriber(
                session,
                email,
                choices(name="X", frequency=frequency, topics=["vold"]),
                confirmed=True,
            )
    send(settings, period)
    return archive_path(Frequency.IMMEDIATE, period.start)


def test_a_daily_readers_mail_from_an_immediate_run_has_no_link_to_that_run(
    client: httpx.Client, settings: Settings, smtp: SMTPServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        path = pool.submit(_immediate_world, settings).result()
    [daily] = smtp.inbox.to("daglig@k.no")
    text = daily.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = daily.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Haster for alle" in text and "Straks-endring" not in text
    assert "/arkiv/" not in text and "/arkiv/" not in html
    assert "Vis i nettleseren" not in text
    # The immediate reader's own mail links to the run, and the page holds what it held.
    own, mail = _view_link(smtp, "straks@k.no", settings.base_url)
    assert own.startswith(path) and "Straks-endring" in mail
    assert "Straks-endring" in text_of(client.get(own).text)


def _topicless_world(settings: Settings) -> str:
    from datetime import timedelta

    from digest.core.archive_links import archive_path
    from digest.core.db import session_scope
    from digest.core.periods import latest_period, schedule_of
    from subscribers.choices import choices
    from subscribers.models import Frequency
    from subscribers.signups import add_subscriber
    from tests.test_archive import RUN_AT, add_change, add_source, send

    period = latest_period(Frequency.DAILY, RUN_AT, schedule_of(settings))
    with session_scope(settings.database_url) as session:
        felles = add_source(session, "felles", "Felles nyheter", [])  # no topics: for all
        add_change(session, felles, "Nasjonal rundskriv om vold", period.start + timedelta(hours=1))
        add_subscriber(
            session,
            "leser@kommune.no",
            choices(name="L", frequency="daily", topics=["barn"]),
            confirmed=True,
        )
    send(settings, period)
    return archive_path(Frequency.DAILY, period.start)


def test_a_topic_reader_finds_online_what_their_mail_had_from_a_source_without_topics(
    client: httpx.Client, settings: Settings, smtp: SMTPServer
) -> None:
    """compose gives a source with no topics to every reader (Recipient.wants); the mail to
    a «barn» reader holds its change. The archive's «barn» listing, feed and snippet use
    queries.source_ids, which leaves such sources out."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        path = pool.submit(_topicless_world, settings).result()
    mail = smtp.inbox.to("leser@kommune.no")[-1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Nasjonal rundskriv om vold" in mail
    assert path in client.get("/arkiv").text  # listed for everyone
    problems = []
    if path not in client.get("/arkiv?tema=barn").text:
        problems.append("/arkiv?tema=barn does not list the run")
    if "Nasjonal rundskriv" not in client.get("/endringer/tema/barn.atom").text:
        problems.append("/endringer/tema/barn.atom lacks the change")
    if "Nasjonal rundskriv" not in client.get("/innebygd/tema/barn").text:
        problems.append("/innebygd/tema/barn lacks the change")
    assert not problems, problems
