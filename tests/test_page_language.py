"""The public pages' language (by link, by header, by the switch in a real browser, by the
subscriber's own choice on their links) and «Bare det som er laget for min rolle»: on by
default with a role, can be turned off, stored, and the resources each role brings shown.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.settings import Settings
from digest.watch.sources import load_sources, sync_sources
from subscribers.choices import choices
from subscribers.models import SignupRequest, Subscriber
from subscribers.signups import add_subscriber
from subscribers.tokens import make_token
from tests.support.browser import (
    launched_browser,  # noqa: F401  (the `browser` fixture)
    shoot,
)
from tests.support.server import LiveServer, csrf
from tests.support.smtp import SMTPServer

# Sources written for different readers (as the letter names them), on two topics.
SOURCES = """
[topics]
vold = "Vold i nære relasjoner"
barn = "Barn og unge"

[audiences]
kommunal-ledelse = "Kommunal ledelse og ledere av krisesentre"
barnehage-skole = "Barnehager og skoler"
alle-barn = "Alle som jobber med barn"

[roles]
kommunal-ledelse = ["kommunal-ledelse"]
barnehage-skole = ["barnehage-skole", "alle-barn"]
barnevern = ["alle-barn"]
annet = []

[[source]]
key = "jegvet"
name = "Jeg Vet"
kind = "feed"
url = "https://jegvet.example/feed"
topics = ["vold"]
audiences = ["barnehage-skole"]

[[source]]
key = "komplan"
name = "Bufdir – Kommunal handlingsplan"
kind = "feed"
url = "https://komplan.example/feed"
topics = ["vold"]
audiences = ["kommunal-ledelse"]

[[source]]
key = "snakke"
name = "SNAKKE"
kind = "feed"
url = "https://snakke.example/feed"
topics = ["barn"]
audiences = ["alle-barn"]
"""


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def synced(settings: Settings, sources_file: Path) -> None:
    """The sources, audiences and roles stored, as `digest sources sync` stores them."""
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(sources_file))


def html_lang(response: httpx.Response) -> str:
    found = re.search(r'<html lang="([^"]*)"', response.text)
    assert found, response.text[:200]
    return found[1]


def heading(response: httpx.Response) -> str:
    found = re.search(r"<h1>(.*?)</h1>", response.text, re.S)
    assert found
    return unescape(found[1]).strip()


def subscriber(settings: Settings, email: str) -> Subscriber:
    with session_scope(settings.database_url) as session:
        found = session.scalar(select(Subscriber).where(Subscriber.email == email))
        assert found is not None
        session.expunge(found)
        return found


def add(settings: Settings, email: str, **chosen: Any) -> Subscriber:
    with session_scope(settings.database_url) as session:
        added = add_subscriber(session, email, choices(**chosen), confirmed=True)
        session.flush()
        session.expunge(added)
        return added


def manage_path(settings: Settings, person: Subscriber) -> str:
    return f"/innstillinger/{make_token(settings.secret_key, 'manage', person.ref)}"


def role_hints(text: str) -> dict[str, str]:
    """What the page says each role brings, by the role's value."""
    hints = re.findall(r'<p class="hint role-brings" id="rolle-([^"]+)">(.*?)</p>', text, re.S)
    return {role: " ".join(unescape(hint).split()) for role, hint in hints}


def role_box(text: str) -> bool:
    """Whether the page shows «only what is made for my role» ticked."""
    found = re.search(r'<input type="checkbox" id="role_only"[^>]*>', text)
    assert found, "no role box"
    return " checked" in found[0]


# --- the language: by link, by header, remembered ---------------------------------------


def test_lang_in_the_address_picks_the_page_and_is_remembered(client: httpx.Client) -> None:
    asked = client.get("/?lang=nn")
    assert asked.status_code == 200 and html_lang(asked) == "nn"
    assert heading(asked) == "Få nytt frå rettleiarane på e-post"
    assert "lang=nn" in asked.headers["set-cookie"]
    # The next page, with no ?lang=, keeps it; so does a form's answer.
    later = client.get("/lenke")
    assert html_lang(later) == "nn" and heading(later) == "Få lenkja til innstillingane dine"
    refused = client.post("/lenke", data={"email": "ikkje ei adresse", "csrf": csrf(client)})
    assert refused.status_code == 400 and "Skriv ei gyldig e-postadresse." in refused.text
    # Another link's ?lang= wins, and is remembered in its turn.
    assert html_lang(client.get("/?lang=en")) == "en"
    assert heading(client.get("/lenke")) == "Get the link to your settings"


@pytest.mark.parametrize(
    ("header", "lang", "title"),
    [
        ("en", "en", "Get what is new in the guides by email"),
        ("en-GB,en;q=0.9", "en", "Get what is new in the guides by email"),
        ("nn-NO", "nn", "Få nytt frå rettleiarane på e-post"),
        ("nn-NO,nn;q=0.9,nb;q=0.8", "nn", "Få nytt frå rettleiarane på e-post"),
        ("nb-NO", "nb", "Få nytt fra veilederne på e-post"),
        ("de-DE,fr;q=0.8", "nb", "Få nytt fra veilederne på e-post"),
        ("", "nb", "Få nytt fra veilederne på e-post"),
    ],
)
def test_the_browser_header_picks_the_language(
    client: httpx.Client, header: str, lang: str, title: str
) -> None:
    page = client.get("/", headers={"Accept-Language": header})
    assert html_lang(page) == lang and heading(page) == title
    assert "set-cookie" not in page.headers or "lang=" not in page.headers["set-cookie"]
    # The mails' language starts as the page's.
    assert re.search(rf'name="language" value="{lang}" checked', page.text)


def test_every_public_page_and_its_labels_follow_the_language(client, settings) -> None:
    english = {"Accept-Language": "en"}
    signup = client.get("/", headers=english)
    for label in ("Crisis centre", "Kindergarten or school", "Municipal management"):
        assert label in signup.text
    assert "Only what is made for my role" in signup.text and "Weekly" in signup.text
    # Content from the sources stays as the file writes it.
    assert "Vold i nære relasjoner" in signup.text
    answers = {
        "/lenke": "Get the link to your settings",
        "/bekreft/not-a-token": "The link does not work",
        "/innstillinger/not-a-token": "The link does not work",
        "/avmelding/not-a-token": "The link does not work",
    }
    for path, title in answers.items():
        assert heading(client.get(path, headers=english)) == title, path
    # An error a form meets (no CSRF field) says so in the page's language too.
    refused = client.post("/lenke?lang=nn", data={"email": "kari@kommune.no"})
    assert refused.status_code == 403 and "Skjemaet hadde gått ut" in refused.text


def test_a_hostile_lang_is_ignored(client: httpx.Client) -> None:
    for value in ("xx", "<script>", "en\r\nSet-Cookie: a=b", "nn" * 3000):
        page = client.get("/", params={"lang": value}, headers={"Accept-Language": "nn"})
        assert page.status_code == 200 and html_lang(page) == "nn"  # the header's, not it
        assert "<script>" not in page.text
        assert "lang=" not in page.headers.get("set-cookie", "")
    client.cookies.set("lang", "<b>")
    assert html_lang(client.get("/")) == "nb"


def test_the_switch_keeps_the_address_and_its_parameters(client, settings) -> None:
    kari = add(settings, "kari@kommune.no", language="nb")
    path = manage_path(settings, kari)
    page = client.get(f"{path}?x=1")
    switch = re.findall(r'<a href="([^"]+)" lang="(\w+)" hreflang', page.text)
    assert [lang for _, lang in switch] == ["nb", "nn", "en"]
    for href, lang in switch:
        assert unescape(href) == f"{path}?x=1&lang={lang}"


def test_the_switch_in_a_browser_is_remembered(live_app: LiveServer, browser: Browser) -> None:
    context = browser.new_context(locale="nb-NO")
    page = context.new_page()
    page.goto(live_app.url + "/")
    assert page.locator("html").get_attribute("lang") == "nb"
    page.get_by_role("navigation", name="Språk").get_by_role("link", name="English").click()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", name="Get what is new in the guides by email").is_visible()
    # Another page, reached without ?lang=: still English.
    page.goto(live_app.url + "/lenke")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("heading", name="Get the link to your settings").is_visible()
    page.get_by_role("link", name="Nynorsk").click()
    page.goto(live_app.url + "/")
    assert page.get_by_role("heading", name="Få nytt frå rettleiarane på e-post").is_visible()
    context.close()


# --- a subscriber's links: their language, unless ?lang= asks ---------------------------


def test_a_manage_link_opens_in_the_subscribers_language(client, settings) -> None:
    kari = add(settings, "kari@kommune.no", language="nn", role="barnevern")
    path = manage_path(settings, kari)
    page = client.get(path, headers={"Accept-Language": "en"})
    assert html_lang(page) == "nn" and heading(page) == "Innstillingar for kari@kommune.no"
    # ?lang= beats it, and the form posted from that page answers in it.
    english = client.get(f"{path}?lang=en")
    assert html_lang(english) == "en" and heading(english) == "Settings for kari@kommune.no"
    form = {"frequency": "weekly", "language": "nn", "role": "barnevern", "csrf": csrf(client)}
    saved = client.post(f"{path}?lang=en", data=form)
    assert html_lang(saved) == "en" and "Your changes have been saved." in saved.text
    assert "Barnevern" not in saved.text and "Child welfare" in saved.text
    # Without ?lang=, even with the English cookie just set: hers.
    assert html_lang(client.get(path)) == "nn"
    unsubscribe = f"/avmelding/{make_token(settings.secret_key, 'unsubscribe', kari.ref)}"
    assert heading(client.get(unsubscribe)) == "Meld deg av"
    assert "Vil du slutte å få e-post frå Veiledervarsel" in client.get(unsubscribe).text
    gone = client.post(unsubscribe)
    assert html_lang(gone) == "nn" and heading(gone) == "Du er meld av"


def test_choosing_another_language_on_the_manage_page_answers_in_it(client, settings) -> None:
    kari = add(settings, "kari@kommune.no", language="nb")
    path = manage_path(settings, kari)
    token = csrf(client, path)
    saved = client.post(path, data={"frequency": "daily", "language": "en", "csrf": token})
    assert html_lang(saved) == "en" and "Your changes have been saved." in saved.text
    assert subscriber(settings, "kari@kommune.no").language == "en"
    assert html_lang(client.get(path)) == "en"


def test_a_confirm_link_opens_in_the_language_the_sign_up_chose(client, settings, smtp) -> None:
    form = {"email": "ola@kommune.no", "frequency": "daily", "language": "nn"}
    asked = client.post("/abonner", data={**form, "csrf": csrf(client)})
    assert asked.status_code == 200 and html_lang(asked) == "nb"  # the page's, till now
    with session_scope(settings.database_url) as session:
        nonce = session.scalars(select(SignupRequest.nonce)).one()
    path = f"/bekreft/{make_token(settings.secret_key, 'confirm', nonce)}"
    page = client.get(path, headers={"Accept-Language": "en"})
    assert html_lang(page) == "nn" and heading(page) == "Stadfest abonnementet"
    assert html_lang(client.get(f"{path}?lang=en")) == "en"
    done = client.post(path, data={"csrf": csrf(client, path)})
    assert html_lang(done) == "nn" and heading(done) == "Abonnementet er stadfesta"


# --- «Bare det som er laget for min rolle» ----------------------------------------------


def sign_up_and_confirm(client: httpx.Client, settings: Settings, form: dict[str, object]) -> str:
    """Sign up and confirm; what the confirm page said it would apply."""
    response = client.post("/abonner", data={**form, "csrf": csrf(client)})
    assert response.status_code == 200, response.text
    with session_scope(settings.database_url) as session:
        nonce = session.scalars(
            select(SignupRequest.nonce).order_by(SignupRequest.id.desc())
        ).first()
    path = f"/bekreft/{make_token(settings.secret_key, 'confirm', nonce)}"
    shown = client.get(path).text
    assert client.post(path, data={"csrf": csrf(client, path)}).status_code == 200
    return shown


def test_the_role_box_is_on_by_default_with_a_role(client, settings) -> None:
    assert role_box(client.get("/").text)
    base = {"frequency": "daily", "language": "nb"}
    # A sign-up with a role that does not answer (not through the page): on.
    shown = sign_up_and_confirm(
        client, settings, {**base, "email": "a@kommune.no", "role": "barnevern"}
    )
    assert "<dt>Bare det som er laget for min rolle</dt><dd>Ja</dd>" in shown
    assert subscriber(settings, "a@kommune.no").role_only is True
    # The page's form with the box ticked: the hidden «0», then the box's «1».
    ticked = {**base, "email": "b@kommune.no", "role": "barnevern", "role_only": ["0", "1"]}
    sign_up_and_confirm(client, settings, ticked)
    assert subscriber(settings, "b@kommune.no").role_only is True
    # Without a role it narrows nothing: off unless asked for.
    sign_up_and_confirm(client, settings, {**base, "email": "c@kommune.no"})
    assert subscriber(settings, "c@kommune.no").role_only is False


def test_the_role_box_can_be_turned_off_and_is_stored(client, settings) -> None:
    form = {"frequency": "daily", "language": "nb", "role": "kommunal-ledelse"}
    response = client.post(
        "/abonner", data={**form, "email": "d@kommune.no", "role_only": "0", "csrf": csrf(client)}
    )
    assert response.status_code == 200
    with session_scope(settings.database_url) as session:
        [asked] = session.scalars(select(SignupRequest)).all()
        assert asked.choices["role_only"] is False  # in the request until it is confirmed
    path = f"/bekreft/{make_token(settings.secret_key, 'confirm', asked.nonce)}"
    shown = client.get(path).text
    assert re.search(r"<dt>Bare det som er laget for min rolle</dt><dd>Nei</dd>", shown)
    client.post(path, data={"csrf": csrf(client, path)})
    person = subscriber(settings, "d@kommune.no")
    assert person.role_only is False and person.status == "active"
    # The manage page shows it off, and turns it on and off again.
    manage = manage_path(settings, person)
    assert not role_box(client.get(manage).text)
    token = csrf(client, manage)
    on = client.post(manage, data={**form, "role_only": ["0", "1"], "csrf": token})
    assert role_box(on.text) and subscriber(settings, "d@kommune.no").role_only is True
    off = client.post(manage, data={**form, "role_only": "0", "csrf": token})
    assert not role_box(off.text) and subscriber(settings, "d@kommune.no").role_only is False
    # A form that does not ask (an old page) leaves it as it is.
    client.post(manage, data={**form, "role_only": ["0", "1"], "csrf": token})
    client.post(manage, data={**form, "frequency": "weekly", "csrf": token})
    person = subscriber(settings, "d@kommune.no")
    assert (person.role_only, person.frequency) == (True, "weekly")


def test_a_role_box_answer_that_is_neither_yes_nor_no_is_refused_clearly(client, settings):
    form = {"email": "e@kommune.no", "frequency": "daily", "language": "nb"}
    refused = client.post(
        "/abonner",
        data={
            **form,
            "name": "Eva",
            "role": "barnevern",
            "role_only": "kanskje",
            "csrf": csrf(client),
        },
    )
    assert refused.status_code == 400
    assert "Kryss av for «Bare det som er laget for min rolle», eller la være." in refused.text
    # Nothing lost: what was typed and chosen is on the page again.
    assert 'value="Eva"' in refused.text
    assert (
        'name="role" value="barnevern" aria-describedby="rolle-barnevern" checked' in refused.text
    )
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(Subscriber)).all() == []
    kari = add(settings, "kari@kommune.no", role="barnevern", frequency="daily")
    manage = manage_path(settings, kari)
    token = csrf(client, manage)
    answer = client.post(
        manage, data={"frequency": "weekly", "role_only": "kanskje", "csrf": token}
    )
    assert answer.status_code == 400 and "Ingenting er endret." in answer.text
    assert subscriber(settings, "kari@kommune.no").frequency == "daily"


def test_the_pages_show_what_each_role_brings(client, settings) -> None:
    hints = role_hints(client.get("/").text)
    assert hints["barnehage-skole"] == "Laget for denne rollen: Jeg Vet, SNAKKE"
    assert hints["barnevern"] == "Laget for denne rollen: SNAKKE"
    assert hints["kommunal-ledelse"] == "Laget for denne rollen: Bufdir"  # grouped
    # Not narrowed: an empty list in the file, or not in it at all.
    for role in ("annet", "krisesenter", "helse-omsorg"):
        assert hints[role] == "Ikke avgrenset: alt om temaene du velger.", role
    english = client.get("/", headers={"Accept-Language": "en"})
    assert role_hints(english.text)["barnevern"] == "Made for this role: SNAKKE"
    # With the topics a reader chose: only «barn» leaves the managers with nothing.
    kari = add(settings, "kari@kommune.no", role="barnehage-skole", topics=["barn"])
    chosen = role_hints(client.get(manage_path(settings, kari)).text)
    assert chosen["barnehage-skole"] == "Laget for denne rollen: SNAKKE"
    assert chosen["kommunal-ledelse"].startswith("Ingen av ressursene med temaene du har valgt")
    # And a sign-up form shown again keeps to the topics it chose.
    again = client.post(
        "/abonner", data={"email": "x", "topic": "vold", "frequency": "daily", "csrf": csrf(client)}
    )
    assert again.status_code == 400
    assert role_hints(again.text)["barnehage-skole"] == "Laget for denne rollen: Jeg Vet"


def test_the_resource_list_follows_the_role_in_a_browser(
    live_app: LiveServer, browser: Browser, settings: Settings, smtp: SMTPServer
) -> None:
    shoot(browser, live_app.url + "/?lang=nn", "signup-roles-nn")
    page = browser.new_page(locale="nb-NO")
    page.goto(live_app.url + "/")
    school = page.get_by_role("radio", name="Barnehage eller skole")
    manager = page.get_by_role("radio", name="Kommunal ledelse")
    # Each role's list is its description: a screen reader says it with the option.
    assert school.get_attribute("aria-describedby") == "rolle-barnehage-skole"
    assert "Jeg Vet, SNAKKE" in page.locator("#rolle-barnehage-skole").inner_text()
    assert "Bufdir" in page.locator("#rolle-kommunal-ledelse").inner_text()
    assert page.get_by_role("checkbox", name="Bare det som er laget for min rolle").is_checked()
    page.get_by_label("E-postadresse").fill("leder@kommune.no")
    manager.check()
    page.get_by_role("checkbox", name="Bare det som er laget for min rolle").uncheck()
    page.get_by_role("button", name="Meld meg på").click()
    assert page.get_by_role("heading", name="Sjekk e-posten din").is_visible()
    with session_scope(settings.database_url) as session:
        [asked] = session.scalars(select(SignupRequest)).all()
        assert (asked.choices["role"], asked.choices["role_only"]) == ("kommunal-ledelse", False)
    page.close()


# --- the language's reading of hostile requests -------------------------------------------


def test_a_cookie_the_standard_library_cannot_read_does_not_lose_the_language(
    client: httpx.Client,
) -> None:
    for neighbours in ('consent={"necessary":true}', "theme=dark mode", 'q="unclosed'):
        answer = client.get("/", headers={"Cookie": f"{neighbours}; lang=en"})
        assert html_lang(answer) == "en", neighbours


def test_a_long_query_still_has_its_language_and_its_first_fields(client: httpx.Client) -> None:
    query = "&".join(["tema=vold"] * 60)
    answer = client.get(f"/arkiv?lang=en&{query}")
    assert html_lang(answer) == "en"
    switch = re.search(r'href="(/arkiv\?[^"]*lang=nn)"', answer.text)
    assert switch and unescape(switch[1]).count("tema=vold") == 49


def test_the_first_asked_language_counts(client: httpx.Client) -> None:
    assert html_lang(client.get("/?lang=xx&lang=nn&lang=en")) == "nn"


def test_feeds_and_the_embeddable_list_set_no_cookie_and_vary_on_nothing_of_the_reader(
    client: httpx.Client,
) -> None:
    for path in (
        "/arkiv/feed.atom?lang=en",
        "/endringer/tema/vold.atom?lang=nn",
        "/innebygd/tema/vold?lang=en",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "set-cookie" not in answer.headers, path
        assert "Cookie" not in answer.headers.get("vary", ""), path
    page = client.get("/arkiv?lang=en")
    assert "lang=en" in page.headers["set-cookie"]
    assert "Accept-Language" in page.headers["vary"]


@pytest.mark.parametrize(
    ("language", "title"), [("nb", "Fant ikke siden"), ("en", "Page not found")]
)
def test_an_unknown_address_is_a_page_in_the_readers_language(
    client: httpx.Client, language: str, title: str
) -> None:
    answer = client.get(f"/finnes-ikke?lang={language}")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert heading(answer) == title and html_lang(answer) == language
    refused = client.post("/arkiv?lang=en")
    assert refused.status_code == 405 and "GET" in refused.headers["allow"]
    assert html_lang(refused) == "en"
