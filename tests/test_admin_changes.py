"""The editors' review pages: the list with its filters and waiting count, hiding, showing
again and approving from it, and a change's page with its note and corrected title."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import AuditEntry, Change, ChangeReview
from digest.core.settings import Settings
from tests.support.reviewing import changes_of, detected
from tests.support.server import csrf
from tests.support.site import FixtureSite

LIST = "/redaksjon/endringer"


@pytest.fixture
def found(settings: Settings, site: FixtureSite, tmp_path: Path) -> dict[str, list[int]]:
    return detected(settings, site, tmp_path)


def audit_of(settings: Settings, action: str) -> list[AuditEntry]:
    with session_scope(settings.database_url) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()
        session.expunge_all()
        return list(entries)


def post(client: httpx.Client, path: str, page: str = LIST, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf(client, page), **data})


def test_the_list_shows_changes_newest_first_with_what_waits(editor_client, found) -> None:
    page = editor_client.get(LIST)
    assert page.status_code == 200
    text = page.text
    assert "2 endringer venter på godkjenning" in text
    titles = re.findall(r'<a href="/redaksjon/endringer/\d+">([^<]+)</a>', text)
    assert titles == [
        "Botilbud etter opphold",
        "Krisesentertilbudet for menn",
        "Rutiner for avdekking",
        "Ny veileder om partnervold",
    ]
    assert text.count('rel="noopener noreferrer"') == 4
    assert 'class="badge waiting">Venter på godkjenning' in text
    assert 'data-label="Oppdaget">26.11.2026 kl. 11.00' in text  # 10:00 UTC, in Oslo
    assert "Krisesenterveilederen (gjennomgås før sending)" in text
    assert text.count(">Godkjenn</button>") == 2 and text.count(">Skjul</button>") == 4


def test_the_filters_narrow_the_list(editor_client, found) -> None:
    waiting = editor_client.get(LIST, params={"status": "waiting"}).text
    assert "Krisesentertilbudet for menn" in waiting and "Rutiner for avdekking" not in waiting
    assert '<option value="waiting" selected>' in waiting
    by_source = editor_client.get(LIST, params={"kilde": "vold"}).text
    assert "Rutiner for avdekking" in by_source and "Botilbud" not in by_source
    by_topic = editor_client.get(LIST, params={"tema": "krisesenter"}).text
    assert "Botilbud" in by_topic and "Rutiner for avdekking" not in by_topic
    assert (
        "Ingen endringer passer filteret." in editor_client.get(LIST, params={"tema": "barn"}).text
    )
    # Values the form never offers are ignored, not errors.
    odd = editor_client.get(LIST, params={"status": "<script>", "kilde": "x" * 500, "side": "-1"})
    assert odd.status_code == 200 and "Botilbud" in odd.text and "<script>" not in odd.text


def test_hide_from_the_list_and_show_again(settings, editor_client, found) -> None:
    change_id = found["vold"][0]
    back = f"{LIST}?kilde=vold"
    hidden = post(editor_client, f"{LIST}/{change_id}/skjul", tilbake=back)
    assert hidden.status_code == 303
    assert hidden.headers["location"] == f"{back}&melding=skjult"
    page = editor_client.get(hidden.headers["location"]).text
    assert "Endringen er skjult" in page and ">Vis igjen</button>" in page
    assert changes_of(settings, "vold")[0].review is ChangeReview.HIDDEN
    # A second click does nothing and writes nothing.
    again = post(editor_client, f"{LIST}/{change_id}/skjul", tilbake="https://evil.example/")
    assert again.headers["location"] == f"{LIST}?melding=uendret"
    shown = post(editor_client, f"{LIST}/{change_id}/vis")
    assert shown.headers["location"] == f"{LIST}?melding=vist"
    assert changes_of(settings, "vold")[0].review is ChangeReview.AUTO
    [entry] = audit_of(settings, "change_hide")
    assert entry.editor_email == "redaktor@bufdir.no" and entry.target_id == str(change_id)
    assert entry.before == {"review": "auto", "reviewed_at": None, "reviewed_by_id": None}
    assert entry.after["review"] == "hidden"
    assert audit_of(settings, "change_unhide")[0].after["review"] == "auto"


def test_approve_a_waiting_change(settings, editor_client, found) -> None:
    change_id = found["krise"][1]
    approved = post(editor_client, f"{LIST}/{change_id}/godkjenn")
    assert approved.headers["location"] == f"{LIST}?melding=godkjent"
    page = editor_client.get(approved.headers["location"]).text
    assert "1 endring venter på godkjenning" in page
    change = changes_of(settings, "krise")[1]
    assert change.review is ChangeReview.APPROVED and change.reviewed_at is not None
    [entry] = audit_of(settings, "change_approve")
    assert entry.before["review"] == "waiting" and entry.after["review"] == "approved"
    # Only what waits can be approved: a change sent as detected, or a hidden one.
    auto = post(editor_client, f"{LIST}/{found['vold'][0]}/godkjenn")
    assert auto.status_code == 409 and "venter ikke på godkjenning" in auto.text
    post(editor_client, f"{LIST}/{found['krise'][0]}/skjul")
    hidden = post(editor_client, f"{LIST}/{found['krise'][0]}/godkjenn")
    assert hidden.status_code == 409 and "Vis den igjen" in hidden.text


def test_a_note_too_long_is_refused_beside_the_field_and_kept(
    settings, editor_client, found
) -> None:
    change_id = found["vold"][0]
    path = f"{LIST}/{change_id}"
    typed = "Kapittelet er oppdatert etter ny lov om krisesentertilbud. " * 4
    refused = post(editor_client, f"{path}/notat", path, note=typed)
    assert refused.status_code == 400
    assert 'role="alert"' in refused.text
    assert 'id="note-error">Notatet kan ha høyst 200 tegn' in refused.text
    assert 'aria-invalid="true"' in refused.text and "note-hint note-error" in refused.text
    assert f'value="{typed}"' in refused.text
    assert changes_of(settings, "vold")[0].editor_note == ""
    saved = post(editor_client, f"{path}/notat", path, note="Oppdatert etter ny lov\u202e")
    assert saved.headers["location"] == f"{path}?melding=notat"
    page = editor_client.get(saved.headers["location"]).text
    assert "Notatet er lagret." in page and 'value="Oppdatert etter ny lov"' in page
    [entry] = audit_of(settings, "change_note")
    assert entry.before == {"editor_note": ""}
    assert entry.after == {"editor_note": "Oppdatert etter ny lov"}
    assert "Notat: Oppdatert etter ny lov" in editor_client.get(LIST).text


def test_a_corrected_title_is_shown_with_the_original_in_a_hint(
    settings, editor_client, found
) -> None:
    change_id = found["vold"][0]
    path = f"{LIST}/{change_id}"
    saved = post(editor_client, f"{path}/tittel", path, title="Veileder om vold i parforhold")
    assert saved.headers["location"] == f"{path}?melding=tittel"
    listing = editor_client.get(LIST).text
    assert f'<a href="{path}">Veileder om vold i parforhold</a>' in listing
    assert "Opprinnelig: Ny veileder om partnervold" in listing
    too_long = post(editor_client, f"{path}/tittel", path, title="T" * 301)
    assert too_long.status_code == 400 and 'id="title-error"' in too_long.text
    assert audit_of(settings, "change_title")[0].after == {
        "corrected_title": "Veileder om vold i parforhold"
    }
    post(editor_client, f"{path}/tittel", path, title="")
    assert changes_of(settings, "vold")[0].corrected_title is None


@pytest.mark.parametrize("change_id", ["999", "abc", "1" * 40, "%C2%B9"])
def test_unknown_or_odd_ids_are_a_missing_page(editor_client, found, change_id) -> None:
    assert editor_client.get(f"{LIST}/{change_id}").status_code == 404
    assert post(editor_client, f"{LIST}/{change_id}/skjul").status_code == 404
    assert post(editor_client, f"{LIST}/{change_id}/notat", note="x").status_code == 404


def test_the_pages_need_a_signed_in_editor(client, found) -> None:
    assert client.get(LIST).status_code == 303
    token = csrf(client, "/redaksjon/logg-inn")
    refused = client.post(f"{LIST}/{found['vold'][0]}/skjul", data={"csrf": token})
    assert refused.status_code == 303 and "/redaksjon/logg-inn" in refused.headers["location"]


def test_a_change_page_links_only_web_addresses(settings, editor_client, found) -> None:
    change_id = found["vold"][0]
    with session_scope(settings.database_url) as session:
        session.get_one(Change, change_id).url = "javascript:alert(1)"
    page = editor_client.get(f"{LIST}/{change_id}").text
    assert 'href="javascript:' not in page and "javascript:alert(1)" in page
    assert 'href="javascript:' not in editor_client.get(LIST).text
