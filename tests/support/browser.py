"""A real browser for the tests (Debian's Chromium driven by Playwright), the widths pages
are looked at, screenshots into var/screenshots/, and waiting for a mail to arrive.

A test module that wants the browser imports `launched_browser` from here, and its tests
take the `browser` fixture (one browser per module).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.smtp import SMTPServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


@pytest.fixture(scope="module", name="browser")
def launched_browser() -> Iterator[Browser]:
    """One Chromium for the module's tests (import this; the tests ask for `browser`)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


def shoot(browser: Browser, url: str, name: str) -> None:
    """The page at phone and desktop widths, as a person would see it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, viewport in WIDTHS.items():
        page = browser.new_page(viewport=viewport)
        page.goto(url)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        page.close()


def mail_to(smtp: SMTPServer, address: str, count: int, timeout: float = 15) -> str:
    """The text part of the count-th mail to `address`, waiting for it to arrive."""
    deadline = time.monotonic() + timeout
    while len(smtp.inbox.to(address)) < count:
        assert time.monotonic() < deadline, f"no mail number {count} to {address}"
        time.sleep(0.01)
    return smtp.inbox.to(address)[count - 1].get_body(("plain",)).get_content()
