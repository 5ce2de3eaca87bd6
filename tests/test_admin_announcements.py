"""The editors' announcement pages, through a real browser-like client of the live app:
writing with mistakes, publishing, a stale edit, withdrawing, deleting only drafts, the
CSRF check, and the audit trail."""

from __future__ import annotations

import re
from html import unescape

import httpx
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Announcement, AnnouncementStatus, AuditEntry
from digest.core.settings import Settings
from digest.delivery import announcements as service
from digest.delivery.announcements import AnnouncementInput
from tests.support.server import csrf

BASE = "/redaksjon/kunngjoringer"


def post_form(client: httpx.Client, path: str, page: str, **fields: object) -> httpx.Response:
    data: dict[str, object] = {"csrf": csrf(client, page), **fields}
    return client.post(path, data=data)  # type: ignore[arg-type]


def stored(settings: Settings) -> list[Announcement]:
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(Announcement).order_by(Announcement.id)).all()
        session.expunge_all()
        return list(rows)


def actions(settings: Settings) -> list[tuple[str, str, str]]:
    with session_scope(settings.database_url) as session:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == "announcement")
            .order_by(AuditEntry.id)
        ).all()
        return [(e.editor_email, e.action, e.target_id) for e in rows]


def make(settings: Settings, title: str = "Kurs", *, publish: bool = False) -> int:
    with session_scope(settings.database_url) as session:
        return service.create(session, AnnouncementInput(title), editor_id=None, publish=publish).id


def test_anonymous_is_sent_to_sign_in(settings: Settings, client: httpx.Client) -> None:
    item = make(settings)
    for path in (BASE, f"{BASE}/ny", f"{BASE}/{item}", f"{BASE}/{item}/rediger"):
        answer = client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/redaksjon/logg-inn?neste=/redaksjon/")
    answer = post_form(client, f"{BASE}/{item}/slett", "/redaksjon/logg-inn")
    assert answer.status_code == 303 and "logg-inn" in answer.headers["location"]
    assert [a.id for a in stored(settings)] == [item]


def test_a_form_with_mistakes_names_them_and_keeps_what_was_typed(
    settings: Settings, editor_client: httpx.Client
) -> None:
    form = editor_client.get(f"{BASE}/ny")
    assert form.status_code == 200
    assert 'name="csrf"' in form.text and "Lagre som utkast" in form.text
    assert "Forhåndsvis" in form.text and "Publiser" in form.text
    assert "Krisesenter" in form.text and "Vold i nære relasjoner" in form.text
    answer = post_form(
        editor_client,
        f"{BASE}/ny",
        f"{BASE}/ny",
        title="T" * 301,
        body="Min **tekst** <b>med</b> «æøå»",
        link="javascript:alert(1)",
        topic=["vold", "ukjent"],
        role=["barnevern"],
        municipalities="0301, Bergen, Herøy, Atlantis",
        publish_from="2026-12-10T09:00",
        publish_until="2026-12-01T09:00",
        pinned="1",
        handling="publiser",
    )
    assert answer.status_code == 400
    page = answer.text
    assert 'role="alert"' in page
    for name in ("title", "link", "topics", "municipalities", "publish_until"):
        assert f'id="{name}-feil"' in page, name
    assert (
        'id="title" name="title" type="text" required maxlength="2000" value="' + "T" * 301 in page
    )
    assert 'aria-invalid="true" aria-describedby="title-feil"' in page
    assert "Tittelen kan ha høyst 300 tegn" in page
    assert "Lenken må være en nettadresse" in page
    assert "«Herøy»" in page and "«Atlantis»" in page
    assert "Publiseringen må slutte etter at den begynner" in page
    # What was typed is all still there.
    assert "Min **tekst** &lt;b&gt;med&lt;/b&gt; «æøå»</textarea>" in page
    assert 'value="javascript:alert(1)"' in page
    assert 'value="0301, Bergen, Herøy, Atlantis"' in page
    assert 'value="2026-12-10T09:00"' in page and 'value="2026-12-01T09:00"' in page
    assert re.search(r'value="vold" checked', page) and re.search(
        r'value="barnevern" checked', page
    )
    assert re.search(r'name="pinned" value="1" checked', page)
    assert stored(settings) == []


def test_an_oversized_body_is_named_beside_the_field(
    settings: Settings, editor_client: httpx.Client
) -> None:
    answer = post_form(
        editor_client,
        f"{BASE}/ny",
        f"{BASE}/ny",
        title="Kurs",
        body="å" * 20_001,
        handling="utkast",
    )
    assert answer.status_code == 400
    assert 'id="body-feil"' in answer.text and "høyst 20 000 tegn" in answer.text
    assert stored(settings) == []


def test_preview_shows_the_mail_and_saves_nothing(
    settings: Settings, editor_client: httpx.Client
) -> None:
    answer = post_form(
        editor_client,
        f"{BASE}/ny",
        f"{BASE}/ny",
        title="Fagdag",
        body="Meld deg på **nå**.\n\n<script>alert(1)</script>\n\n[klikk](javascript:alert(2))",
        link="https://www.bufdir.no/fagdag",
        handling="forhandsvis",
    )
    assert answer.status_code == 200
    page = answer.text
    assert "<strong>nå</strong>" in page
    assert "<script>alert(1)" not in page and 'href="javascript' not in page
    text = re.search(r'<pre class="text-part">(.*?)</pre>', page, re.DOTALL)
    assert text and unescape(text[1]).startswith("* Fagdag\nMeld deg på nå.")
    assert "Ingenting er lagret" in page
    assert stored(settings) == []


def test_create_and_publish(settings: Settings, editor_client: httpx.Client) -> None:
    answer = post_form(
        editor_client,
        f"{BASE}/ny",
        f"{BASE}/ny",
        title="Fagdag om vold",
        body="Meld deg på **innen fredag**.",
        link="https://www.bufdir.no/fagdag",
        topic=["vold"],
        role=["krisesenter", "barnevern"],
        municipalities="Oslo - Oslove (0301), 4601",
        publish_from="27.11.2026 09.30",
        publish_until="2026-12-24T12:00",
        send_immediately="1",
        handling="publiser",
    )
    assert answer.status_code == 303
    [item] = stored(settings)
    assert answer.headers["location"] == f"{BASE}/{item.id}?melding=publisert"
    assert item.status == AnnouncementStatus.PUBLISHED
    assert item.roles == ["barnevern", "krisesenter"] and item.municipalities == ["0301", "4601"]
    assert item.topics == ["vold"] and item.send_immediately and not item.pinned
    assert item.publish_from.isoformat() == "2026-11-27T08:30:00+00:00"  # Oslo is UTC+1
    assert item.created_by_id is not None
    shown = editor_client.get(answer.headers["location"])
    assert shown.status_code == 200
    assert "Kunngjøringen er publisert." in shown.text and 'role="status"' in shown.text
    assert "27.11.2026 kl. 09.30" in shown.text and "24.12.2026 kl. 12.00" in shown.text
    assert "<strong>innen fredag</strong>" in shown.text
    assert (
        '<pre class="text-part">* Fagdag om vold\nMeld deg på innen fredag.\n  https://www.bufdir.no/fagdag</pre>'
        in shown.text
    )
    assert "Barnevern" in shown.text and "Oslo - Oslove" in shown.text
    assert "Trekk tilbake" in shown.text and "Slett utkastet" not in shown.text
    listed = editor_client.get(BASE)
    assert "Fagdag om vold" in listed.text and 'class="badge published"' in listed.text
    assert 'data-label="Status"' in listed.text
    assert actions(settings) == [("redaktor@bufdir.no", "announcement_create", str(item.id))]


def test_save_a_draft_edit_it_and_publish(settings: Settings, editor_client: httpx.Client) -> None:
    answer = post_form(
        editor_client, f"{BASE}/ny", f"{BASE}/ny", title="Utkast", pinned="1", handling="utkast"
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("?melding=utkast")
    [item] = stored(settings)
    assert item.status == AnnouncementStatus.DRAFT and item.pinned
    page = f"{BASE}/{item.id}/rediger"
    form = editor_client.get(page)
    assert 'name="version" value="1"' in form.text and 'value="Utkast"' in form.text
    start = re.search(r'name="publish_from" type="datetime-local" value="([^"]*)"', form.text)
    assert start and start[1]
    answer = post_form(
        editor_client,
        page,
        page,
        title="Ferdig",
        body="Tekst",
        version="1",
        publish_from=start[1],
        municipalities="Herøy (Nordland)",
        handling="publiser",
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("?melding=publisert")
    [after] = stored(settings)
    assert (after.title, after.version, after.status) == ("Ferdig", 2, AnnouncementStatus.PUBLISHED)
    assert after.publish_from == item.publish_from  # unchanged to the second
    assert after.municipalities == ["1818"] and not after.pinned
    assert [a[1] for a in actions(settings)] == [
        "announcement_create",
        "announcement_update",
        "announcement_publish",
    ]


def test_a_stale_edit_keeps_what_was_typed_and_shows_what_is_stored(
    settings: Settings, editor_client: httpx.Client
) -> None:
    item = make(settings, "Første")
    page = f"{BASE}/{item}/rediger"
    token = csrf(editor_client, page)
    with session_scope(settings.database_url) as session:
        service.update(
            session, item, AnnouncementInput("Noen andres", body="Deres tekst"), version=1
        )
    answer = editor_client.post(
        page,
        data={
            "csrf": token,
            "title": "Min tittel",
            "body": "Min tekst",
            "version": "1",
            "handling": "lagre",
        },
    )
    assert answer.status_code == 409
    text = answer.text
    assert "Noen andre har endret kunngjøringen mens du skrev." in text and 'role="alert"' in text
    assert 'value="Min tittel"' in text and "Min tekst</textarea>" in text
    assert "Noen andres" in text and "Deres tekst" in text
    # Saving again, knowingly, replaces the stored version.
    assert 'name="version" value="2"' in text
    [row] = stored(settings)
    assert (row.title, row.version) == ("Noen andres", 2)
    again = editor_client.post(
        page,
        data={
            "csrf": token,
            "title": "Min tittel",
            "body": "Min tekst",
            "version": "2",
            "handling": "lagre",
        },
    )
    assert again.status_code == 303
    [row] = stored(settings)
    assert (row.title, row.version) == ("Min tittel", 3)


def test_withdraw_and_publish_again(settings: Settings, editor_client: httpx.Client) -> None:
    item = make(settings, publish=True)
    shown = f"{BASE}/{item}"
    answer = post_form(editor_client, f"{shown}/trekk-tilbake", shown)
    assert answer.status_code == 303 and answer.headers["location"] == f"{shown}?melding=trukket"
    page = editor_client.get(answer.headers["location"]).text
    assert "Kunngjøringen er trukket tilbake." in page and "Publiser igjen" in page
    assert stored(settings)[0].status == AnnouncementStatus.WITHDRAWN
    with session_scope(settings.database_url) as session:
        assert service.published_at(session, service.utcnow()) == []
    assert post_form(editor_client, f"{shown}/publiser", shown).status_code == 303
    assert stored(settings)[0].status == AnnouncementStatus.PUBLISHED
    entries = actions(settings)
    assert [a[1] for a in entries] == ["announcement_withdraw", "announcement_publish"]
    with session_scope(settings.database_url) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "announcement_withdraw")
        ).one()
        assert entry.before["status"] == "published" and entry.after["status"] == "withdrawn"  # type: ignore[index]


def test_only_a_draft_is_deleted(settings: Settings, editor_client: httpx.Client) -> None:
    draft, published = make(settings, "Utkast"), make(settings, "Ute", publish=True)
    page = editor_client.get(f"{BASE}/{draft}").text
    assert re.search(
        r'action="/redaksjon/kunngjoringer/\d+/slett">\s*<input[^>]*>\s*<button type="submit" class="danger">',
        page,
    )
    refused = post_form(editor_client, f"{BASE}/{published}/slett", f"{BASE}/{published}")
    assert refused.status_code == 409 and "Bare utkast kan slettes" in refused.text
    answer = post_form(editor_client, f"{BASE}/{draft}/slett", f"{BASE}/{draft}")
    assert answer.status_code == 303 and answer.headers["location"] == f"{BASE}?melding=slettet"
    assert "Utkastet er slettet." in editor_client.get(answer.headers["location"]).text
    assert [a.title for a in stored(settings)] == ["Ute"]
    assert actions(settings) == [("redaktor@bufdir.no", "announcement_delete", str(draft))]
    assert editor_client.get(f"{BASE}/{draft}").status_code == 404


def test_every_form_needs_its_csrf_field(settings: Settings, editor_client: httpx.Client) -> None:
    item = make(settings, publish=False)
    for path in (
        f"{BASE}/ny",
        f"{BASE}/{item}/rediger",
        f"{BASE}/{item}/publiser",
        f"{BASE}/{item}/slett",
    ):
        answer = editor_client.post(
            path, data={"title": "X", "version": "1", "handling": "publiser"}
        )
        assert answer.status_code == 403, path
        forged = editor_client.post(path, data={"csrf": "x" * 40, "title": "X", "version": "1"})
        assert forged.status_code == 403, path
    [row] = stored(settings)
    assert (row.title, row.status) == ("Kurs", AnnouncementStatus.DRAFT)


def test_unknown_or_odd_ids_are_a_404_page(settings: Settings, editor_client: httpx.Client) -> None:
    for path in ("999", "abc", "-1", "1.5", "\u0663", "99999999999999999999999", "1%00", "%20"):
        for suffix in ("", "/rediger"):
            answer = editor_client.get(f"{BASE}/{path}{suffix}")
            assert answer.status_code == 404, (path, suffix)
            assert "Fant ikke kunngjøringen" in answer.text
        answer = post_form(editor_client, f"{BASE}/{path}/publiser", BASE)
        assert answer.status_code == 404, path


def test_the_list_filters_by_state(settings: Settings, editor_client: httpx.Client) -> None:
    make(settings, "Et utkast")
    make(settings, "En publisert", publish=True)
    everything = editor_client.get(BASE).text
    assert "Et utkast" in everything and "En publisert" in everything
    assert 'href="/redaksjon/kunngjoringer/ny"' in everything and "Ny kunngjøring" in everything
    drafts = editor_client.get(BASE, params={"tilstand": "utkast"}).text
    assert "Et utkast" in drafts and "En publisert" not in drafts
    assert editor_client.get(BASE, params={"tilstand": "tull\u202e"}).status_code == 200


def test_an_emptied_start_means_from_now(settings: Settings, editor_client: httpx.Client) -> None:
    from datetime import timedelta

    from subscribers.base import utcnow

    with session_scope(settings.database_url) as session:
        item = service.create(
            session,
            AnnouncementInput("Senere", publish_from=utcnow() + timedelta(days=3)),
            editor_id=None,
            publish=True,
        ).id
    before = utcnow().replace(microsecond=0)
    page = f"{BASE}/{item}/rediger"
    answer = post_form(
        editor_client, page, page, title="Nå", version="1", publish_from="", handling="lagre"
    )
    assert answer.status_code == 303
    [row] = stored(settings)
    assert before <= row.publish_from <= utcnow()
