"""The preview page: the next digest of a sample profile or a subscriber, exactly as it would
be sent now, what waits for approval, and a test send that records nothing."""

from __future__ import annotations

import html
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import (
    AnnouncementReceipt,
    AuditEntry,
    Delivery,
    DigestRun,
    Editor,
)
from digest.core.settings import Settings
from digest.delivery import review
from digest.delivery.previews import next_period
from subscribers.base import utcnow
from subscribers.choices import Choices
from subscribers.models import ConsentEvent, Frequency, Subscriber
from subscribers.people import new_subscriber
from tests.support.reviewing import detected
from tests.support.server import csrf
from tests.support.site import FixtureSite
from tests.support.smtp import SMTPServer

PAGE = "/redaksjon/forhandsvisning"
VOLD_DAILY = {"profil": "1", "topic": "vold", "frequency": "daily", "language": "nb"}


@pytest.fixture
def found(settings: Settings, site: FixtureSite, tmp_path: Path) -> dict[str, list[int]]:
    # Detected at the start of the daily period now running, so that the next daily
    # digest (whenever the test runs) holds them.
    start = next_period(Frequency.DAILY, utcnow(), settings).start
    return detected(settings, site, tmp_path, start)


def add_subscriber(settings: Settings, email: str, topics: tuple[str, ...]) -> int:
    with session_scope(settings.database_url) as session:
        subscriber = new_subscriber(
            email, Choices(topics=topics, frequency=Frequency.DAILY), confirmed=True
        )
        session.add(subscriber)
        session.flush()
        return subscriber.id


def count(settings: Settings, table: type) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_a_sample_profile_shows_the_period_the_mail_and_what_waits(editor_client, found) -> None:
    page = editor_client.get(PAGE, params=VOLD_DAILY)
    assert page.status_code == 200
    # The frame takes the page's policy; the mail's inline styles need it, nothing else.
    policy = page.headers["content-security-policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy and "default-src 'none'" in policy
    assert "script-src" not in policy and "frame-ancestors 'none'" in policy
    text = page.text
    assert "Perioden</dt><dd>" in text and " kl. 08.00 – " in text
    # The HTML part, escaped into the sandboxed frame; the text part as text.
    frame = text.split('<div class="preview-frame">')[1].split("</iframe>")[0]
    assert " sandbox " in frame and 'srcdoc="' in frame and "<html" not in frame
    assert "Ny veileder om partnervold" in html.unescape(frame)
    assert "&lt;html" in frame or "&lt;!DOCTYPE" in frame or "&lt;table" in frame
    text_part = text.split('<pre class="text-part">')[1].split("</pre>")[0]
    assert "Rutiner for avdekking" in text_part
    # Waiting changes are not in it, and this reader has none of the held-back topic.
    assert "Krisesentertilbudet for menn" not in html.unescape(frame)
    assert "Ingenting for denne mottakeren venter på godkjenning." in text
    assert "I alt 2 endringer venter på godkjenning." in text
    everyone = editor_client.get(PAGE, params={"profil": "1"}).text
    assert "2 endringer for denne mottakeren venter på godkjenning" in everyone
    for change_id in found["krise"]:
        assert f'href="/redaksjon/endringer/{change_id}"' in everyone


def test_a_subscriber_preview_follows_review(settings, editor_client, found) -> None:
    add_subscriber(settings, "leder@kommune.no", ("krisesenter",))
    before = editor_client.get(PAGE, params={"email": "Leder@Kommune.no"}).text
    assert "Neste sammendrag til leder@kommune.no" in before
    assert "Ingenting ville blitt sendt nå" in before and "<iframe" not in before
    assert "2 endringer for denne mottakeren venter" in before
    with session_scope(settings.database_url) as session:
        editor = session.scalars(select(Editor)).one()
        review.approve(session, found["krise"][0], editor, utcnow())
    after = editor_client.get(PAGE, params={"email": "leder@kommune.no"}).text
    assert "Krisesentertilbudet for menn" in after.split('<pre class="text-part">')[1]
    assert "1 endring for denne mottakeren venter" in after
    # Each look at a person's digest is in the log, with who looked.
    with session_scope(settings.database_url) as session:
        looks = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "preview_subscriber")
        ).all()
    assert [(a.editor_email, a.target_type) for a in looks] == [
        ("redaktor@bufdir.no", "subscriber")
    ] * 2


def test_an_unknown_address_is_refused_beside_the_field(editor_client, found) -> None:
    page = editor_client.get(PAGE, params={"email": "ingen@kommune.no"})
    assert page.status_code == 400
    assert 'id="email-error">Fant ingen abonnent med denne adressen.' in page.text
    assert 'value="ingen@kommune.no"' in page.text and 'aria-invalid="true"' in page.text
    odd = editor_client.get(PAGE, params={"email": "ikke en adresse\u202e"})
    assert odd.status_code == 400 and "Fant ingen abonnent" in odd.text
    bad_role = editor_client.get(PAGE, params={"profil": "1", "role": "<script>"})
    assert bad_role.status_code == 400 and 'id="role-error"' in bad_role.text
    assert "<script>" not in bad_role.text


def post_test(client: httpx.Client, data: dict[str, str]) -> httpx.Response:
    return client.post(f"{PAGE}/test", data={"csrf": csrf(client, PAGE), **data})


def columns(subscriber: Subscriber) -> dict[str, object]:
    return {c.key: getattr(subscriber, c.key) for c in Subscriber.__table__.columns}


def test_a_test_send_arrives_marked_and_records_nothing(
    settings, editor_client, found, smtp: SMTPServer
) -> None:
    subscriber_id = add_subscriber(settings, "leder@kommune.no", ("vold",))
    with session_scope(settings.database_url) as session:
        before = columns(session.get_one(Subscriber, subscriber_id))
        events = session.scalar(select(func.count()).select_from(ConsentEvent))
    sent = post_test(editor_client, {"email": "leder@kommune.no"})
    assert sent.status_code == 303
    assert sent.headers["location"] == f"{PAGE}?email=leder%40kommune.no&melding=sendt"
    assert "Testen er sendt" in editor_client.get(sent.headers["location"]).text
    [message] = smtp.inbox.to("redaktor@bufdir.no")
    assert message["Subject"].startswith("[TEST] ")
    assert not smtp.inbox.to("leder@kommune.no")
    assert "Ny veileder om partnervold" in message.get_body(("plain",)).get_content()
    for table in (DigestRun, Delivery, AnnouncementReceipt):
        assert count(settings, table) == 0
    with session_scope(settings.database_url) as session:
        assert columns(session.get_one(Subscriber, subscriber_id)) == before
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == events
        [entry] = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "preview_test_send")
        ).all()
        assert entry.after["to"] == "redaktor@bufdir.no"
        assert entry.target_id == f"subscriber:{subscriber_id}"
    profile = post_test(editor_client, VOLD_DAILY)
    assert profile.headers["location"].endswith("&melding=sendt")
    assert len(smtp.inbox.to("redaktor@bufdir.no")) == 2


def test_nothing_to_send_sends_nothing(editor_client, found, smtp: SMTPServer) -> None:
    nothing = {"profil": "1", "topic": "barn"}
    page = editor_client.get(PAGE, params=nothing).text
    assert "Ingenting ville blitt sendt nå" in page and "Send en test til meg" not in page
    answer = post_test(editor_client, nothing)
    assert answer.status_code == 303 and "melding" not in answer.headers["location"]
    assert smtp.inbox.messages == []


def test_the_page_needs_a_signed_in_editor(client) -> None:
    assert client.get(PAGE).status_code == 303
