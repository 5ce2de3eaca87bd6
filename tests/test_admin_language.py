"""The editors' pages in nynorsk and English: every page by `?lang=`, by Accept-Language and
by the remembered choice, and by the switch in a real browser; the menu, notices, form
notes and error pages in the chosen language; times typed the same way in every language;
and axe-core finding nothing serious on the pages in either language."""

from __future__ import annotations

import re
from datetime import datetime
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Announcement, EditorRole
from digest.core.settings import Settings
from digest.delivery import announcements as service
from digest.delivery.announcements import AnnouncementInput
from tests.support.browser import launched_browser  # noqa: F401  (the `browser` fixture)
from tests.support.editors import PASSWORD, make_editor
from tests.support.reviewing import detected
from tests.support.server import LiveServer, csrf
from tests.support.site import FixtureSite

ANNOUNCEMENTS = "/redaksjon/kunngjoringer"
CHANGES = "/redaksjon/endringer"
PREVIEW = "/redaksjon/forhandsvisning"
# The menu as bokmål writes it (the admin's, with every item): none of it may remain in
# a page in another language.
MENU_NB = [
    ">Kunngjøringer<",
    ">Endringer<",
    ">Forhåndsvisning<",
    ">Kilder<",
    ">Utsendelser<",
    ">Abonnenter<",
    ">Redaktører<",
    ">Logg<",
    ">API-nøkler<",
    ">Logg ut<",
    'aria-label="Redaksjonen"',
]
MENU = {
    "nn": [">Kunngjeringar<", ">Endringar<", ">Førehandsvising<", ">Kjelder<", ">Logg ut<"],
    "en": [">Announcements<", ">Changes<", ">Preview<", ">Sources<", ">Audit log<", ">Sign out<"],
}


def language_of(page: str) -> str:
    found = re.search(r'<html lang="([a-z]+)"', page)
    assert found, "no <html lang>"
    return found[1]


def text_of(page: str) -> str:
    """The page's text with its entities read (as a reader sees «“» and «’»)."""
    return unescape(page)


def make_announcement(settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        data = AnnouncementInput("Fagdag om vold", body="Meld deg på.")
        return service.create(session, data, editor_id=None, publish=True).id


def post(client: httpx.Client, path: str, page: str, **data: object) -> httpx.Response:
    return client.post(path, data={"csrf": csrf(client, page), **data})  # type: ignore[arg-type]


@pytest.fixture
def found(settings: Settings, site: FixtureSite, tmp_path: Path) -> dict[str, list[int]]:
    return detected(settings, site, tmp_path)


def pages(announcement: int, change: int) -> dict[str, tuple[int, dict[str, list[str]]]]:
    """Path -> (status, {language: texts the page shows})."""
    return {
        ANNOUNCEMENTS: (
            200,
            {
                "nn": ["Kunngjeringar – Veiledervarsel", "Ny kunngjering", "Alle tema"],
                "en": ["Announcements – Veiledervarsel", "New announcement", "All topics"],
            },
        ),
        f"{ANNOUNCEMENTS}/ny": (
            200,
            {
                "nn": ["Lagre som utkast", "Publiser frå", "(tomt tyder frå no)"],
                "en": ["Save as draft", "Publish from", "(empty means from now)"],
            },
        ),
        f"{ANNOUNCEMENTS}/{announcement}": (
            200,
            {
                "nn": ["Publiserast frå", "Trekk tilbake", "Slik ser ho ut i e-posten"],
                "en": ["Published from", "Withdraw", "How it looks in the email"],
            },
        ),
        f"{ANNOUNCEMENTS}/{announcement}/rediger": (
            200,
            {
                "nn": ["Rediger «Fagdag om vold»", "Lagre endringane"],
                "en": ["Edit “Fagdag om vold”", "Save changes"],
            },
        ),
        CHANGES: (
            200,
            {
                "nn": [
                    "Oppdaga endringar",
                    "2 endringar ventar på godkjenning før dei blir sende.",
                    "Krisesenterveilederen (blir gått gjennom før sending)",
                ],
                "en": [
                    "Detected changes",
                    "2 changes are waiting for approval before they are sent.",
                    "Krisesenterveilederen (reviewed before sending)",
                ],
            },
        ),
        f"{CHANGES}/{change}": (
            200,
            {
                "nn": ["Notat til mottakarane", "Retta tittel", "Ventar på godkjenning"],
                "en": ["Note to the recipients", "Corrected title", "Waiting for approval"],
            },
        ),
        f"{PREVIEW}?profil=1&topic=vold&frequency=daily&language=nb": (
            200,
            {
                "nn": ["Førehandsvising av neste samandrag", "Ein eksempelprofil", "Dagleg"],
                "en": ["Preview of the next digest", "A sample profile", "Daily"],
            },
        ),
        f"{ANNOUNCEMENTS}/999999": (
            404,
            {
                "nn": [
                    "Fann ikkje kunngjeringa",
                    "Kunngjeringa finst ikkje. Kanskje er ho sletta.",
                ],
                "en": [
                    "Announcement not found",
                    "The announcement does not exist. Perhaps it was deleted.",
                ],
            },
        ),
        f"{CHANGES}/999999": (404, {"nn": ["Fann ikkje endringa"], "en": ["Change not found"]}),
    }


@pytest.mark.parametrize("language", ["nn", "en"])
def test_every_editor_page_in_the_language_the_address_asks_for(
    settings: Settings, admin_client: httpx.Client, found: dict[str, list[int]], language: str
) -> None:
    announcement = make_announcement(settings)
    for path, (status, texts) in pages(announcement, found["krise"][0]).items():
        joiner = "&" if "?" in path else "?"
        answer = admin_client.get(f"{path}{joiner}lang={language}")
        assert answer.status_code == status, path
        page = text_of(answer.text)
        assert language_of(page) == language, path
        for expected in texts[language] + MENU[language]:
            assert expected in page, (path, expected)
        # The switch is there, with this language as the current one.
        assert re.search(rf'hreflang="{language}" aria-current="true"', page), path
        if language == "en":
            assert [nb for nb in MENU_NB if nb in page] == [], path
        assert "(administrator)" in page


def test_the_sign_in_page_and_its_answers_in_english(
    settings: Settings, client: httpx.Client
) -> None:
    make_editor(settings)
    form = client.get("/redaksjon/logg-inn?lang=en")
    assert language_of(form.text) == "en"
    page = text_of(form.text)
    assert "Sign in to the editors’ pages" in page and ">Password<" in page
    assert "Logg inn" not in page and "Passord" not in page
    assert 'role="status"' not in page  # no notice was asked for
    # The choice is remembered: the answer to the form is in English too.
    wrong = post(
        client,
        "/redaksjon/logg-inn",
        "/redaksjon/logg-inn",
        email="redaktor@bufdir.no",
        password="feil passord her",
    )
    assert wrong.status_code == 400
    assert "Wrong email address or password." in wrong.text
    for _ in range(settings.sign_in_attempts - 1):
        post(
            client,
            "/redaksjon/logg-inn",
            "/redaksjon/logg-inn",
            email="redaktor@bufdir.no",
            password="feil passord her",
        )
    # Past the limit, even the right password is refused, in English.
    refused = post(
        client,
        "/redaksjon/logg-inn",
        "/redaksjon/logg-inn",
        email="redaktor@bufdir.no",
        password=PASSWORD,
    )
    assert refused.status_code == 429
    minutes = settings.sign_in_window_minutes
    assert f"Too many failed attempts. Wait {minutes} minutes and try again." in refused.text


def test_the_page_language_by_accept_language_and_by_the_remembered_choice(
    editor_client: httpx.Client,
) -> None:
    english = editor_client.get(ANNOUNCEMENTS, headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert language_of(english.text) == "en" and ">New announcement<" in english.text
    nynorsk = editor_client.get(ANNOUNCEMENTS, headers={"Accept-Language": "nn-NO"})
    assert language_of(nynorsk.text) == "nn" and ">Ny kunngjering<" in nynorsk.text
    bokmal = editor_client.get(ANNOUNCEMENTS)
    assert language_of(bokmal.text) == "nb" and ">Ny kunngjøring<" in bokmal.text
    # The switch's choice is remembered, over what the browser asks for.
    switched = editor_client.get(f"{ANNOUNCEMENTS}?lang=nn")
    assert "lang=nn" in switched.headers["set-cookie"]
    later = editor_client.get(CHANGES, headers={"Accept-Language": "en"})
    assert language_of(later.text) == "nn" and ">Oppdaga endringar<" in later.text


def test_form_notes_and_notices_in_english_and_times_typed_as_always(
    settings: Settings, editor_client: httpx.Client
) -> None:
    editor_client.get(f"{ANNOUNCEMENTS}?lang=en")
    refused = post(
        editor_client,
        f"{ANNOUNCEMENTS}/ny",
        f"{ANNOUNCEMENTS}/ny",
        title="",
        link="ftp://example.org/",
        municipalities="Atlantis",
        publish_from="neste uke",
        handling="utkast",
    )
    assert refused.status_code == 400
    page = text_of(refused.text)
    assert language_of(page) == "en"
    for note in (
        "Something must be corrected before the announcement can be saved.",
        "Write a title.",
        "The link must be a web address beginning with https:// or http://.",
        "Write the time as 27.11.2026 09.30 (date and time).",
        "Could not find «Atlantis».",
    ):
        assert note in page
    assert "Skriv en tittel" not in page and "Lenken må" not in page
    too_long = post(editor_client, f"{ANNOUNCEMENTS}/ny", f"{ANNOUNCEMENTS}/ny", title="x" * 301)
    assert "The title can have at most 300 characters (it has 301)." in too_long.text
    # Times are read as in bokmål, whatever the page's language.
    saved = post(
        editor_client,
        f"{ANNOUNCEMENTS}/ny",
        f"{ANNOUNCEMENTS}/ny",
        title="Fagdag",
        publish_from="27.11.2026 09.30",
        publish_until="2026-12-24T12:00",
        handling="utkast",
    )
    assert saved.status_code == 303
    shown = editor_client.get(saved.headers["location"])
    page = text_of(shown.text)
    assert "The draft is saved." in page
    assert "27 Nov 2026, 09:30" in page and "24 Dec 2026, 12:00" in page
    assert '<span class="badge draft">Draft</span>' in page
    with session_scope(settings.database_url) as session:
        stored = session.scalars(select(Announcement)).one()
        oslo = ZoneInfo("Europe/Oslo")
        assert stored.publish_from == datetime(2026, 11, 27, 9, 30, tzinfo=oslo)
        assert stored.publish_until == datetime(2026, 12, 24, 12, 0, tzinfo=oslo)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("27.11.2026 kl. 09.30", datetime(2026, 11, 27, 9, 30)),
        ("2026-11-27T09:30", datetime(2026, 11, 27, 9, 30)),
        ("27.11.2026", datetime(2026, 11, 27, 0, 0)),
    ],
)
def test_a_nynorsk_page_reads_times_as_the_bokmal_one(
    settings: Settings, editor_client: httpx.Client, typed: str, expected: datetime
) -> None:
    editor_client.get(f"{ANNOUNCEMENTS}?lang=nn")
    saved = post(
        editor_client,
        f"{ANNOUNCEMENTS}/ny",
        f"{ANNOUNCEMENTS}/ny",
        title="Fagdag",
        publish_from=typed,
        handling="utkast",
    )
    assert saved.status_code == 303
    assert "Utkastet er lagra." in editor_client.get(saved.headers["location"]).text
    with session_scope(settings.database_url) as session:
        stored = session.scalars(select(Announcement)).one()
        assert stored.publish_from == expected.replace(tzinfo=ZoneInfo("Europe/Oslo"))


def test_review_notes_and_notices_in_nynorsk(
    editor_client: httpx.Client, found: dict[str, list[int]]
) -> None:
    editor_client.get(f"{CHANGES}?lang=nn")
    path = f"{CHANGES}/{found['vold'][0]}"
    refused = post(editor_client, f"{path}/notat", path, note="x" * 201)
    assert refused.status_code == 400
    assert 'id="note-error">Notatet kan ha høgst 200 teikn, på éi linje.' in refused.text
    assert ">Noko må rettast:<" in refused.text
    saved = post(editor_client, f"{path}/notat", path, note="Oppdatert etter ny lov")
    assert "Notatet er lagra." in editor_client.get(saved.headers["location"]).text
    hidden = post(editor_client, f"{path}/skjul", path, tilbake=CHANGES)
    listed = editor_client.get(hidden.headers["location"]).text
    assert "Endringa er skjult og kjem ikkje med i noko samandrag." in listed
    refused_again = post(editor_client, f"{path}/godkjenn", path, tilbake=CHANGES)
    assert refused_again.status_code == 409
    assert "Kan ikkje godkjennast" in refused_again.text
    assert "Endringa er skjult. Vis ho att før du godkjenner ho." in refused_again.text


def test_an_editor_on_an_admins_page_is_told_so_in_english(editor_client: httpx.Client) -> None:
    refused = editor_client.get("/redaksjon/kilder?lang=en")
    assert refused.status_code == 403
    page = text_of(refused.text)
    assert "<h1>No access</h1>" in page
    assert "This page is for administrators only." in page
    assert "To the editors’ front page" in page
    # An editor's menu has no admin items, and none of it in bokmål.
    assert ">Sources<" not in page and [nb for nb in MENU_NB if nb in page] == []


def test_the_preview_notes_and_signing_out_in_english(editor_client: httpx.Client) -> None:
    editor_client.get(f"{PREVIEW}?lang=en")
    unknown = editor_client.get(PREVIEW, params={"email": "ingen@example.org"})
    assert unknown.status_code == 400
    assert "No subscriber has this address." in unknown.text
    assert ">Something must be corrected:<" in unknown.text
    # The profile form offers the roles and frequencies in English.
    page = editor_client.get(PREVIEW).text
    assert ">No role<" in page and ">Weekly<" in page
    signed_out = post(editor_client, "/redaksjon/logg-ut", PREVIEW)
    assert signed_out.status_code == 303
    page = text_of(editor_client.get(signed_out.headers["location"]).text)
    assert language_of(page) == "en" and "You are signed out." in page


def test_the_switch_in_a_browser_and_no_serious_axe_findings_in_either_language(
    settings: Settings,
    live_app: LiveServer,
    browser: Browser,
    found: dict[str, list[int]],
) -> None:
    make_editor(settings, "admin@bufdir.no", EditorRole.ADMIN)
    announcement = make_announcement(settings)
    context = browser.new_context(base_url=live_app.url, locale="en-GB", timezone_id="Europe/Oslo")
    page = context.new_page()
    # The browser asks for English: the sign-in page is in English.
    page.goto("/redaksjon/logg-inn")
    expect(page.get_by_role("heading", name="Sign in to the editors’ pages")).to_be_visible()
    page.get_by_label("Email address").fill("admin@bufdir.no")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Announcements", exact=True)).to_be_visible()
    # The switch: nynorsk, and it stays so from page to page.
    page.get_by_role("navigation", name="Language").get_by_role("link", name="Nynorsk").click()
    expect(page.get_by_role("heading", name="Kunngjeringar", exact=True)).to_be_visible()
    page.get_by_role("link", name="Endringar", exact=True).click()
    expect(page.get_by_role("heading", name="Oppdaga endringar")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "nn")

    axe = Axe()
    paths = [
        ANNOUNCEMENTS,
        f"{ANNOUNCEMENTS}/ny",
        f"{ANNOUNCEMENTS}/{announcement}",
        CHANGES,
        f"{CHANGES}/{found['krise'][0]}",
        f"{PREVIEW}?profil=1&topic=vold&frequency=daily&language=nb",
        f"{ANNOUNCEMENTS}/999999",
    ]
    for language in ("nn", "en"):
        for path in paths:
            page.goto(f"{path}{'&' if '?' in path else '?'}lang={language}")
            expect(page.locator("html")).to_have_attribute("lang", language)
            violations = axe.run(page).response["violations"]
            serious = [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
            assert serious == [], (language, path, serious)
    context.close()
