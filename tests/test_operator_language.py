"""The operators' pages (sources, runs and a run, subscribers, a subscriber, the roster
upload, editors and an editor, the audit log, API tokens, the API docs) in nynorsk and
English: chosen by `?lang=` (then remembered) or by Accept-Language, with their headings,
table labels, statuses, notices and form notes in that language, and the same forms
taking the same input whatever the language."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Editor, Source
from digest.core.settings import Settings
from digest.watch.sources import load_sources, sync_sources
from subscribers.choices import choices
from subscribers.signups import add_subscriber
from tests.support.server import csrf
from tests.support.smtp import SMTPServer
from tests.test_admin_runs import make_run

# Bokmål that the operators' own page text has and neither translation keeps.
BOKMAL = (
    "Kilder",
    "Utsendelser",
    "Mottakere",
    "Abonnenter",
    "Redaktører",
    "Last opp abonnentliste",
    "Logg over handlinger",
    "Lag en ny nøkkel",
    "Hyppighet",
    "Handlinger",
    "Hvem",
    "Sist innlogget",
    "Opprettet",
    "Beskrivelse",
    "Påkrevd",
)
# The admin menu's bokmål (templates/web/admin/base.html).
MENU = ("Kunngjøringer", "Forhåndsvisning", "Logg ut", "API-nøkler")


@pytest.fixture
def world(settings: Settings, smtp: SMTPServer, admin_client: httpx.Client) -> dict[str, str]:
    """Something on every page: the sources synced, a run with deliveries, a subscriber,
    a second editor and an API token (made through its form, so the log has entries)."""
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(settings.sources_file))
    started = make_run(settings, ["kari@oslo.kommune.no"])
    with session_scope(settings.database_url) as session:
        ref = add_subscriber(
            session, "per@tana.kommune.no", choices(frequency="weekly"), confirmed=True
        ).ref
        source_id = session.scalars(select(Source.id).where(Source.key == "rvts-test")).one()
        admin_id = session.scalars(select(Editor.id).where(Editor.email == "admin@bufdir.no"))
        admin = admin_id.one()
    made = admin_client.post(
        "/redaksjon/nokler", data={"csrf": csrf(admin_client, "/redaksjon/nokler"), "name": "CMS"}
    )
    assert made.status_code == 200
    return {
        "run": f"/redaksjon/utsendelser/{started.run_id}",
        "subscriber": f"/redaksjon/abonnenter/{ref}",
        "source": str(source_id),
        "editor": f"/redaksjon/redaktorer/{admin}",
    }


# Each page, and strings its nynorsk and English versions show.
PAGES = {
    "sources": ("/redaksjon/kilder", ["Kjelder", "Sjekk no"], ["Sources", "Check now"]),
    "runs": ("/redaksjon/utsendelser", ["Utsendingar", "Framdrift"], ["Mailings", "Progress"]),
    "run": (
        "{run}",
        ["Mottakarar", "Adressa inneheld"],
        ["Recipients", "Address contains", ">Sending<"],
    ),
    "subscribers": (
        "/redaksjon/abonnenter",
        ["Abonnentar", "Last ned alle som CSV", "Kor ofte"],
        ["Subscribers", "Download all as CSV", "2 subscribers match."],
    ),
    "subscriber": (
        "{subscriber}",
        ["Samtykkehistorikk", "Kommandolinja"],
        ["Consent history", "The command line", "Subscribed", "Only what is made for the role"],
    ),
    "roster": (
        "/redaksjon/abonnenter/import",
        ["Last opp abonnentliste", "Kontroller fila"],
        ["Upload subscriber list", "Check the file"],
    ),
    "editors": (
        "/redaksjon/redaktorer",
        ["Redaktørar", "Legg til ein redaktør"],
        ["Editors", "Add an editor", "First password"],
    ),
    "editor": ("{editor}", ["Endre rolle", "Set nytt passord"], ["Change role", "(you)"]),
    "audit": (
        "/redaksjon/logg",
        ["Logg over handlingar", "Laga API-nøkkel"],
        ["Log of actions", "Created API key", "Signed in"],
    ),
    "tokens": (
        "/redaksjon/nokler",
        ["API-nøklar", "Lag ein ny nøkkel"],
        ["API keys", "Create a new key", "Begins with", ">Revoke<"],
    ),
    "api-docs": (
        "/api/docs",
        ["Operasjonar", "List kunngjeringar", "maks. 300 teikn"],
        ["Operations", "List announcements", "max. 300 characters", "Required"],
    ),
}


def fetch(client: httpx.Client, path: str, **headers: str) -> str:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.text


def html_lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]*)"', page)
    assert found
    return found[1]


def data_labels(page: str) -> set[str]:
    return set(re.findall(r'data-label="([^"]*)"', page))


@pytest.mark.parametrize("name", PAGES)
def test_every_operator_page_in_nynorsk_and_english(
    name: str, world: dict[str, str], admin_client: httpx.Client
) -> None:
    path, nynorsk, english = PAGES[name]
    path = path.format(**world)
    for lang, wanted in (("nn", nynorsk), ("en", english)):
        page = fetch(admin_client, f"{path}?lang={lang}")
        assert html_lang(page) == lang
        for text in wanted:
            assert text in page, (name, lang, text)
    # English: none of the operators' bokmål headings or labels, in text or data-label
    # (the menu is the editors' pages': see the last test).
    shown = re.sub(
        r'href="[^"]*"|action="[^"]*"|<nav class="admin-nav".*?</nav>', "", page, flags=re.S
    )
    assert [b for b in BOKMAL if re.search(rf"\b{re.escape(b)}\b", shown)] == [], name
    assert not data_labels(page) & {"Kilde", "Adresse", "Navn", "Rolle", "Tid", "Påkrevd"}
    # Bokmål is still the default, and `?lang=nb` brings it back.
    assert html_lang(fetch(admin_client, f"{path}?lang=nb")) == "nb"


def test_the_language_is_remembered_and_follows_accept_language(
    world: dict[str, str], admin_client: httpx.Client
) -> None:
    assert "Sjekk no" in fetch(admin_client, "/redaksjon/kilder", **{"Accept-Language": "nn-NO"})
    english = fetch(admin_client, "/redaksjon/utsendelser", **{"Accept-Language": "en-GB,en"})
    assert html_lang(english) == "en" and "Mailings" in english
    fetch(admin_client, "/redaksjon/logg?lang=nn")  # remembered in the cookie from here on
    assert html_lang(fetch(admin_client, "/redaksjon/redaktorer")) == "nn"
    remembered = fetch(admin_client, "/redaksjon/nokler", **{"Accept-Language": "en"})
    assert html_lang(remembered) == "nn" and "Nøklane dine" in remembered


def test_notices_and_form_errors_in_english(
    settings: Settings, world: dict[str, str], admin_client: httpx.Client
) -> None:
    fetch(admin_client, "/redaksjon/kilder?lang=en")
    token = csrf(admin_client, "/redaksjon/kilder")
    paused = admin_client.post(f"/redaksjon/kilder/{world['source']}/pause", data={"csrf": token})
    assert paused.status_code == 303
    page = fetch(admin_client, paused.headers["location"])
    assert "The source has been paused and will not be checked until it is resumed." in page
    assert "Paused since" in page and "Resume" in page

    # The same form input as in bokmål; the notes by the fields in English.
    token = csrf(admin_client, "/redaksjon/redaktorer")
    refused = admin_client.post(
        "/redaksjon/redaktorer",
        data={"csrf": token, "email": "ikke en adresse", "role": "editor", "password": "kort"},
    )
    assert refused.status_code == 400
    assert "Enter a valid email address, for example name@bufdir.no." in refused.text
    assert "The password must have at least" in refused.text
    assert "Something needs correcting before the editor can be added." in refused.text
    added = admin_client.post(
        "/redaksjon/redaktorer",
        data={
            "csrf": token,
            "email": "ny@bufdir.no",
            "role": "editor",
            "password": "et langt og godt passord",
            "password2": "et langt og godt passord",
        },
    )
    assert added.status_code == 303
    assert "The editor has been added." in fetch(admin_client, added.headers["location"])

    unnamed = admin_client.post(
        "/redaksjon/nokler", data={"csrf": csrf(admin_client, "/redaksjon/nokler"), "name": ""}
    )
    assert unnamed.status_code == 400 and "Give the key a name" in unnamed.text

    missing = admin_client.get("/redaksjon/utsendelser/999999")
    assert missing.status_code == 404 and "Mailing not found." in missing.text


def test_a_roster_check_in_nynorsk(world: dict[str, str], admin_client: httpx.Client) -> None:
    fetch(admin_client, "/redaksjon/abonnenter/import?lang=nn")
    roster = b"email;name\r\nola@oslo.kommune.no;Ola\r\nfeil@@kommune.no;Feil\r\n"
    checked = admin_client.post(
        "/redaksjon/abonnenter/import",
        data={"csrf": csrf(admin_client, "/redaksjon/abonnenter/import"), "basis": ""},
        files={"file": ("liste.csv", roster, "text/csv")},
    )
    assert checked.status_code == 200
    text = checked.text
    assert "2 linjer: 1 nye, 0 blir oppdaterte, 0 duplikat, 1 avviste." in text
    assert "Ugyldig e-postadresse." in text and "Avvist" in text
    assert "ingenting er lagra enno" in text
    empty = admin_client.post(
        "/redaksjon/abonnenter/import",
        data={"csrf": csrf(admin_client, "/redaksjon/abonnenter/import"), "confirmed": "1"},
        files={"file": ("tom.csv", b"", "text/csv")},
    )
    assert empty.status_code == 400
    assert "Vel ei CSV-fil med abonnentar." in empty.text
    assert "Skriv grunnlaget for at dei får e-post" in empty.text


def test_the_admin_menu_in_english(world: dict[str, str], admin_client: httpx.Client) -> None:
    # The menu is the editors' pages' (templates/web/admin/base.html, the editor domain).
    page = fetch(admin_client, "/redaksjon/kilder?lang=en")
    menu = page.split('class="admin-nav"')[1].split("</nav>")[0]
    assert [b for b in MENU if b in menu] == []
