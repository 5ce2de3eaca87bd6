"""The public pages in a real browser (Debian's Chromium driven by Playwright): sign up,
confirm from the mail, change preferences, unsubscribe; screenshots at phone and desktop
widths go to var/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.settings import Settings, get_settings
from digest.watch.sources import load_sources, sync_sources
from digest.web.app import create_app
from subscribers.models import Subscriber
from tests.conftest import fresh_database
from tests.support.browser import (
    SCREENSHOTS,
    WIDTHS,
    launched_browser,  # noqa: F401  (the `browser` fixture)
    mail_to,
    shoot,
)
from tests.support.server import LiveServer
from tests.support.smtp import SMTPServer, free_port


@pytest.fixture
def site(
    env, sources_file: Path, smtp: SMTPServer, migrated_sqlite: bytes
) -> Iterator[tuple[Settings, LiveServer]]:
    port = free_port()
    env.setenv("DIGEST_SOURCES_FILE", str(sources_file))
    env.setenv("DIGEST_SMTP_URL", smtp.url)
    env.setenv("DIGEST_FROM_ADDRESS", "varsel@veiledervarsel.no")
    env.setenv("DIGEST_BASE_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    settings = get_settings()
    fresh_database(settings, migrated_sqlite)
    with session_scope(settings.database_url) as session:  # as `digest sources sync` does
        sync_sources(session, load_sources(sources_file))
    server = LiveServer(create_app(settings), port=port).start()
    yield settings, server
    server.stop()


def link_in(text: str, path: str) -> str:
    return re.search(rf"(http://\S+{path}/\S+)", text)[1]


def status(settings: Settings, email: str) -> Subscriber:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(Subscriber).where(Subscriber.email == email))


def test_sign_up_confirm_manage_and_leave(site, browser: Browser, smtp: SMTPServer) -> None:
    settings, server = site
    shoot(browser, server.url + "/", "signup")
    # A Norwegian browser: the pages follow its Accept-Language.
    page: Page = browser.new_page(viewport=WIDTHS["phone"], locale="nb-NO")
    page.goto(server.url + "/")
    page.get_by_label("E-postadresse").fill("Kari.Nordmann@Kommune.no")
    page.get_by_label("Navn").fill("Kari Ødegård")
    page.get_by_label("Kommune").select_option("0301")
    page.get_by_label("Krisesenter", exact=True).check()
    page.get_by_role("checkbox", name=re.compile("Vold i nære relasjoner")).check()
    page.get_by_label("Daglig").check()
    page.get_by_role("button", name="Meld meg på").click()
    assert page.get_by_role("heading", name="Sjekk e-posten din").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "signup-sent-phone.png"), full_page=True)
    assert status(settings, "kari.nordmann@kommune.no").status == "pending"

    confirm = link_in(mail_to(smtp, "kari.nordmann@kommune.no", 1), "/bekreft")
    shoot(browser, confirm, "confirm")
    assert status(settings, "kari.nordmann@kommune.no").status == "pending"  # GET is harmless
    page.goto(confirm)
    page.get_by_role("button", name="Bekreft abonnementet").click()
    assert page.get_by_role("heading", name="Abonnementet er bekreftet").is_visible()
    row = status(settings, "kari.nordmann@kommune.no")
    assert (row.status, row.municipality, row.topics, row.role) == (
        "active",
        "0301",
        ["vold"],
        "krisesenter",
    )

    page.goto(server.url + "/lenke")
    page.get_by_label("E-postadresse").fill("kari.nordmann@kommune.no")
    page.get_by_role("button", name="Send meg lenken").click()
    assert page.get_by_role("heading", name="Sjekk e-posten din").is_visible()
    manage = link_in(mail_to(smtp, "kari.nordmann@kommune.no", 2), "/innstillinger")
    shoot(browser, manage, "manage")
    page.goto(manage)
    page.get_by_label("Ukentlig").check()
    page.get_by_role("button", name="Lagre").click()
    assert page.get_by_text("Endringene er lagret").is_visible()
    assert status(settings, "kari.nordmann@kommune.no").frequency == "weekly"

    page.get_by_role("link", name="Meld deg av").click()
    shoot(browser, page.url, "unsubscribe")
    page.get_by_role("button", name="Meld meg av").click()
    assert page.get_by_role("heading", name="Du er meldt av").is_visible()
    assert status(settings, "kari.nordmann@kommune.no").status == "unsubscribed"
    page.close()


def test_one_click_unsubscribe_from_outside_the_browser(site, smtp: SMTPServer) -> None:
    settings, server = site
    with httpx.Client(base_url=server.url) as client:
        signup = client.get("/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', signup.text)[1]
        client.post(
            "/abonner",
            data={"email": "ola@kommune.no", "frequency": "daily", "language": "nb", "csrf": csrf},
        )
    message_text = mail_to(smtp, "ola@kommune.no", 1)
    with httpx.Client() as outsider:  # a mail client: no cookies, no CSRF, one bare POST
        confirm_url = link_in(message_text, "/bekreft")
        page = outsider.get(confirm_url)
        assert page.status_code == 200
        refused = outsider.post(confirm_url)  # the confirm button needs the page's CSRF
        assert refused.status_code == 403
    header = smtp.inbox.to("ola@kommune.no")[0]["List-Unsubscribe"].strip("<>")
    response = httpx.post(header, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert status(settings, "ola@kommune.no").status == "unsubscribed"
    again = httpx.post(header, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
