"""The announcements service: every field checked at once, edits from a stale version
refused, the rules of publishing, withdrawing and deleting, the publish window, and the
Markdown safe in HTML and in text."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Announcement, AnnouncementStatus, AuditEntry
from digest.core.settings import Settings
from digest.delivery import announcements as service
from digest.delivery.announcements import (
    AnnouncementError,
    AnnouncementInput,
    AnnouncementNotFound,
    StaleEdit,
)

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def test_a_good_announcement_is_stored_cleaned(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        item = service.create(
            session,
            AnnouncementInput(
                title="  Fagdag\u202e om\u200b vold\r\nBcc: x@evil.example ",
                body="Meld deg på\u2066 **nå**.\n\n* punkt\u200d to\n",
                link=" https://www.bufdir.no/fagdag ",
                topics=("Vold", "barn", "vold"),
                roles=("krisesenter",),
                municipalities=("301", "5001"),
                publish_until=NOW + timedelta(days=30),
                pinned=True,
                send_immediately=True,
            ),
            editor_id=None,
            publish=True,
        )
        assert item.title == "Fagdag om vold Bcc: x@evil.example"
        assert item.body == "Meld deg på **nå**.\n\n* punkt to"
        assert item.link == "https://www.bufdir.no/fagdag"
        assert item.topics == ["barn", "vold"]
        assert item.roles == ["krisesenter"]
        assert item.municipalities == ["0301", "5001"]
        assert item.status == AnnouncementStatus.PUBLISHED and item.published_at is not None
        assert item.version == 1 and item.pinned and item.send_immediately
        view = service.as_view(item)
        assert view.roles == ("krisesenter",) and view.municipalities == ("0301", "5001")
        assert view.pinned and view.send_immediately and view.topics == ("barn", "vold")


def test_every_field_at_fault_is_named_at_once(settings: Settings) -> None:
    bad = AnnouncementInput(
        title="\u200b \u202e",
        body="x" * 20_001,
        link="javascript:alert(1)",
        topics=("vold", "ukjent"),
        roles=("krisesenter", "sjef"),
        municipalities=("0301", "9999"),
        publish_from=NOW,
        publish_until=NOW - timedelta(minutes=1),
    )
    with session_scope(settings.database_url) as session:
        with pytest.raises(AnnouncementError) as caught:
            service.create(session, bad, editor_id=None, publish=True)
        assert session.scalars(select(Announcement)).all() == []
    errors = caught.value.errors
    assert set(errors) == {
        "title",
        "body",
        "link",
        "topics",
        "roles",
        "municipalities",
        "publish_until",
    }
    assert caught.value.field == "title"
    assert "9999" in errors["municipalities"]
    assert "20 000" in errors["body"]
    message = str(caught.value)
    assert "the title is empty" in message and "ends before it starts" in message


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>",
        "https://x.no/\r\nBcc: y",
        "https://x.no/a b",
        "https://x.no/\u202eexe",
        "http://",
        "https://[::1",
        "ftp://x.no/",
        "https://x.no/" + "a" * 2000,
    ],
)
def test_a_link_must_be_plain_http(settings: Settings, link: str) -> None:
    with (
        session_scope(settings.database_url) as session,
        pytest.raises(AnnouncementError) as caught,
    ):
        service.create(session, AnnouncementInput("Kurs", link=link), editor_id=None, publish=False)
    assert caught.value.field == "link" and set(caught.value.errors) == {"link"}


def test_a_title_of_301_characters_is_too_long(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        service.create(session, AnnouncementInput("t" * 300), editor_id=None, publish=False)
        with pytest.raises(AnnouncementError) as caught:
            service.create(session, AnnouncementInput("t" * 301), editor_id=None, publish=False)
    assert caught.value.errors == {"title": "Tittelen kan ha høyst 300 tegn (den har 301)."}


def test_times_without_a_zone_or_off_the_calendar_are_refused(settings: Settings) -> None:
    with (
        session_scope(settings.database_url) as session,
        pytest.raises(AnnouncementError) as caught,
    ):
        service.create(
            session,
            AnnouncementInput(
                "Kurs",
                publish_from=datetime(2026, 12, 1, 8, 0),
                publish_until=datetime(9999, 12, 31, tzinfo=UTC),
            ),
            editor_id=None,
            publish=True,
        )
    assert set(caught.value.errors) == {"publish_from", "publish_until"}


def test_an_edit_bumps_the_version_and_a_stale_one_is_refused(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        item = service.create(session, AnnouncementInput("Kurs"), editor_id=None, publish=False)
        item_id, first_from = item.id, item.publish_from
    with session_scope(settings.database_url) as session:
        edited = service.update(
            session, item_id, AnnouncementInput("Kurs i samtaler", body="Ny tekst"), version=1
        )
        assert edited.version == 2 and edited.updated_at is not None
        # No start given: the window keeps the one it had.
        assert edited.publish_from == first_from
    with session_scope(settings.database_url) as session, pytest.raises(StaleEdit) as caught:
        service.update(
            session, item_id, AnnouncementInput("Mitt forslag", link="ftp://x"), version=1
        )
    assert caught.value.field == "version" and caught.value.stored_version == 2
    # The fields at fault are named too, so the editor hears everything at once.
    assert set(caught.value.errors) == {"version", "link"}
    assert caught.value.errors["version"].startswith("Noen andre har endret kunngjøringen")
    with session_scope(settings.database_url) as session:
        stored = session.get_one(Announcement, item_id)
        assert (stored.title, stored.body, stored.version) == ("Kurs i samtaler", "Ny tekst", 2)


def test_of_two_edits_from_one_version_the_second_is_refused(settings: Settings) -> None:
    """Both read version 1; the UPDATE compares the version, so the later writer loses even
    though its own read saw version 1."""
    with session_scope(settings.database_url) as session:
        item_id = service.create(
            session, AnnouncementInput("Kurs"), editor_id=None, publish=False
        ).id
    with session_scope(settings.database_url) as first:
        first_item = service.get(first, item_id)
        assert first_item is not None and first_item.version == 1
        with session_scope(settings.database_url) as second:
            service.update(second, item_id, AnnouncementInput("Andre"), version=1)
        with pytest.raises(StaleEdit):
            # The first session still holds version 1 in its identity map.
            service.update(first, item_id, AnnouncementInput("Første"), version=1)
    with session_scope(settings.database_url) as session:
        assert session.get_one(Announcement, item_id).title == "Andre"


def test_publish_withdraw_and_delete_follow_the_states(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        draft = service.create(session, AnnouncementInput("Kurs"), editor_id=None, publish=False)
        assert draft.status == AnnouncementStatus.DRAFT and draft.published_at is None
        with pytest.raises(AnnouncementError) as caught:
            service.withdraw(session, draft.id)
        assert caught.value.field == "status"
        service.publish(session, draft.id)
        assert draft.status == AnnouncementStatus.PUBLISHED and draft.published_at is not None
        service.publish(session, draft.id)  # again: nothing changes, nothing fails
        with pytest.raises(AnnouncementError) as caught:
            service.delete_draft(session, draft.id)
        assert caught.value.field == "status"
        service.withdraw(session, draft.id)
        assert draft.status == AnnouncementStatus.WITHDRAWN
        service.withdraw(session, draft.id)
        with pytest.raises(AnnouncementError):
            service.delete_draft(session, draft.id)
        service.publish(session, draft.id)  # withdrawn -> published again
        assert draft.status == AnnouncementStatus.PUBLISHED
        other = service.create(session, AnnouncementInput("Utkast"), editor_id=None, publish=False)
        other_id = other.id
        service.delete_draft(session, other_id)
        assert service.get(session, other_id) is None
        for action in (service.publish, service.withdraw, service.delete_draft):
            with pytest.raises(AnnouncementNotFound):
                action(session, other_id)
        with pytest.raises(AnnouncementNotFound):
            service.update(session, other_id, AnnouncementInput("x"), version=1)


def test_published_at_counts_only_published_within_the_window(settings: Settings) -> None:
    window = AnnouncementInput(
        "Vindu",
        roles=("barnevern",),
        municipalities=("0301",),
        publish_from=NOW,
        publish_until=NOW + timedelta(days=1),
        pinned=True,
        send_immediately=True,
    )
    with session_scope(settings.database_url) as session:
        shown = service.create(session, window, editor_id=None, publish=True)
        service.create(session, replace(window, title="Utkast"), editor_id=None, publish=False)
        gone = service.create(
            session, replace(window, title="Trukket"), editor_id=None, publish=True
        )
        service.withdraw(session, gone.id)
        service.create(
            session,
            replace(
                window,
                title="Tidlig",
                pinned=False,
                publish_from=NOW - timedelta(days=3),
                publish_until=None,
            ),
            editor_id=None,
            publish=True,
        )
        before = service.published_at(session, NOW - timedelta(seconds=1))
        assert [v.title for v in before] == ["Tidlig"]
        at_start = service.published_at(session, NOW)
        assert [v.title for v in at_start] == ["Vindu", "Tidlig"]  # pinned first
        view = at_start[0]
        assert view == service.as_view(shown)
        assert view.roles == ("barnevern",) and view.municipalities == ("0301",)
        assert view.pinned and view.send_immediately and view.publish_from == NOW
        # The end is not in the window.
        assert [v.title for v in service.published_at(session, NOW + timedelta(days=1))] == [
            "Tidlig"
        ]


def test_list_all_puts_pinned_first_then_the_newest(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        for title, pinned, publish in (
            ("Eldst", False, True),
            ("Festet", True, False),
            ("Nyest", False, False),
        ):
            service.create(
                session, AnnouncementInput(title, pinned=pinned), editor_id=None, publish=publish
            )
        assert [a.title for a in service.list_all(session)] == ["Festet", "Nyest", "Eldst"]
        drafts = service.list_all(session, AnnouncementStatus.DRAFT)
        assert [a.title for a in drafts] == ["Festet", "Nyest"]


HOSTILE = (
    "Hei **alle**\n\n"
    "<script>alert(1)</script>\n\n"
    '<a href="javascript:alert(2)" onclick="x()">klikk</a> <img src=x onerror=alert(3)>\n\n'
    "[lenke](javascript:alert(4)) [data](data:text/html;base64,PHNjcmlwdD4=) "
    "[vbs](vbscript:msgbox) ![bilde](https://sporing.example/p.gif)\n\n"
    "* en [trygg](https://www.bufdir.no/a?b=1&c=2)\n"
    "* to\u202e\u200b\n"
)


def test_markdown_comes_out_safe_in_html() -> None:
    html = str(service.body_html(HOSTILE))
    assert "<strong>alle</strong>" in html
    tags = re.findall(r"<[^>]*>", html)
    assert {re.match(r"</?(\w+)", t)[1] for t in tags} <= {"p", "strong", "ul", "li", "a"}  # type: ignore[index]
    for tag in tags:
        assert " on" not in tag and "javascript" not in tag.lower()
        assert "data:" not in tag and "vbscript" not in tag
    assert "sporing.example" not in html
    assert (
        '<a href="https://www.bufdir.no/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">trygg</a>'
        in html
    )
    assert "\u202e" not in html and "\u200b" not in html
    # Raw HTML is shown as what it is, escaped, not dropped silently.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_markdown_comes_out_as_plain_text() -> None:
    text = service.body_text(HOSTILE)
    assert text.startswith("Hei alle\n\n")
    assert "**" not in text and "<strong>" not in text
    assert "- en trygg (https://www.bufdir.no/a?b=1&c=2)\n- to" in text
    assert "sporing.example" not in text
    assert "\u202e" not in text and "\u200b" not in text
    # No link is made of a script: what the editor wrote stays inert text, as in the HTML.
    assert "lenke (javascript" not in text and "[lenke](javascript:alert(4))" in text
    assert "data (data:" not in text and "klikk (" not in text
    assert service.body_text("linje en  \nlinje to") == "linje en\nlinje to"
    assert service.body_text("") == "" and str(service.body_html("")) == ""


def test_the_command_line_targets_roles_and_municipalities(settings: Settings) -> None:
    from tests.support import command

    added = command.digest(
        "announce",
        "add",
        "--title",
        "Kurs for krisesentre",
        "--role",
        "krisesenter",
        "--municipality",
        "Bergen",
        "--municipality",
        "301",
        "--pinned",
        "--immediately",
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    listed = command.digest("announce", "list", timeout=60).stdout
    assert "krisesenter,0301,4601 pinned immediately Kurs for krisesentre" in listed
    refused = command.digest(
        "announce", "add", "--title", "X", "--role", "sjef", "--municipality", "9999", timeout=60
    )
    assert refused.returncode == 1 and "unknown municipality: 9999" in refused.stderr
    refused = command.digest("announce", "add", "--title", "X", "--role", "sjef", timeout=60)
    assert refused.returncode == 1 and "unknown role(s): sjef" in refused.stderr
    with session_scope(settings.database_url) as session:
        [item] = session.scalars(select(Announcement)).all()
        assert item.roles == ["krisesenter"] and item.municipalities == ["0301", "4601"]
        assert item.pinned and item.send_immediately
        # In the audit log too, as from the command line.
        [entry] = session.scalars(select(AuditEntry)).all()
        assert (entry.action, entry.editor_email, entry.target_id) == (
            "announcement_create",
            "(kommandolinjen)",
            str(item.id),
        )
        assert entry.after is not None and entry.after["via"] == "cli"
