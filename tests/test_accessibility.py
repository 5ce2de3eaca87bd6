"""axe-core, run in real Chromium, on every page in every language: no serious or critical
violation on the public pages, the archive, the editors' and the operators' pages, each in
bokmål, nynorsk and English (`?lang=`), and each page's `<html lang>` is that language."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from digest.core.archive_links import archive_path
from digest.core.db import session_scope
from digest.core.models import DigestRun
from digest.core.settings import Settings
from digest.mail.links import links_for
from subscribers.models import Subscriber
from tests.support.browser import launched_browser  # noqa: F401  (the `browser` fixture)
from tests.support.server import LiveServer
from tests.support.smtp import SMTPServer
from tests.test_browser_editors import ADMIN, busy_service, found, open_as  # noqa: F401

LANGUAGES = ("nb", "nn", "en")
SERIOUS = {"serious", "critical"}
_axe = Axe()


def in_language(path: str, language: str) -> str:
    return f"{path}{'&' if urlsplit(path).query else '?'}lang={language}"


def violations(page: Page) -> list[str]:
    """The serious and critical violations axe finds in the page as it is now."""
    results = _axe.run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in SERIOUS
    ]


def check(page: Page, path: str, language: str, found_faults: dict[str, list[str]]) -> None:
    answer = page.goto(in_language(path, language))
    assert answer is not None and answer.status < 500, f"{path}: {answer and answer.status}"
    assert page.get_attribute("html", "lang") == language, f"{path} in {language}"
    faults = violations(page)
    if faults:
        found_faults[f"{language} {path}"] = faults


def public_pages(settings: Settings) -> list[str]:
    with session_scope(settings.database_url) as session:
        someone = session.scalars(select(Subscriber).order_by(Subscriber.id)).first()
        assert someone is not None
        links = links_for(settings, someone)
    base = settings.base_url.rstrip("/")
    return [
        "/",
        "/lenke",
        links.manage.removeprefix(base),
        links.unsubscribe.removeprefix(base),
        "/bekreft/ugyldig",
    ]


def archive_pages(settings: Settings, run_id: int) -> list[str]:
    with session_scope(settings.database_url) as session:
        run = session.get_one(DigestRun, run_id)
        own = archive_path(run.frequency, run.period_start)
    return ["/arkiv", "/arkiv/daglig", "/arkiv?q=veileder", own, "/innebygd/tema/vold"]


def editor_pages(run_id: int, waiting: int) -> list[str]:
    return [
        "/redaksjon/kunngjoringer",
        "/redaksjon/kunngjoringer/ny",
        "/redaksjon/endringer",
        f"/redaksjon/endringer/{waiting}",
        "/redaksjon/forhandsvisning",
        "/redaksjon/forhandsvisning?email=krise%40kommune.no",
        "/redaksjon/kilder",
        "/redaksjon/utsendelser",
        f"/redaksjon/utsendelser/{run_id}",
        "/redaksjon/abonnenter",
        "/redaksjon/abonnenter/import",
        "/redaksjon/redaktorer",
        "/redaksjon/logg",
        "/redaksjon/nokler",
        "/redaksjon/kunngjoringer/999999",
        "/api/docs",
    ]


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_serious_violations_on_any_page(
    language: str,
    settings: Settings,
    live_app: LiveServer,
    smtp: SMTPServer,
    browser: Browser,
    found: dict[str, list[int]],  # noqa: F811
) -> None:
    run_id = busy_service(settings, smtp, found)
    faults: dict[str, list[str]] = {}
    anonymous = browser.new_context(base_url=live_app.url, timezone_id="Europe/Oslo")
    page = anonymous.new_page()
    for path in [*public_pages(settings), *archive_pages(settings, run_id), "/redaksjon/logg-inn"]:
        check(page, path, language, faults)
    anonymous.close()

    context, page = open_as(browser, live_app, ADMIN)
    for path in editor_pages(run_id, found["krise"][0]):
        check(page, path, language, faults)
    context.close()
    assert faults == {}
