"""The HTML part as mail programs get it: its structure for Outlook's Word engine and the
clients that drop <style> (parsed), and how it holds in a real browser at phone and
desktop widths in light and dark mode (headless Chromium, axe-core, screenshots in
var/screenshots/).

The digests are real renderings of composed changes in each language, with a long address,
a long word and more changes than a mail shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page
from selectolax.lexbor import LexborHTMLParser, LexborNode

from digest.core.archive_links import digest_url
from digest.core.i18n import translate, translate_plural
from digest.core.models import ChangeKind
from digest.core.periods import Period
from digest.mail.compose import AnnouncementView, ChangeView, Digest, Recipient, compose
from digest.mail.letter import Letterhead
from digest.mail.render import MailLinks, RenderedMail, render, render_notice
from subscribers.models import Frequency
from tests.support.browser import SCREENSHOTS, launched_browser

browser = launched_browser  # one Chromium for the module

OSLO = ZoneInfo("Europe/Oslo")
START = datetime(2024, 11, 25, 7, 0, tzinfo=UTC)  # Monday 08:00 in Oslo
PERIOD = Period(Frequency.WEEKLY, START, START + timedelta(days=7))
LANGUAGES = ("nb", "nn", "en")
WIDTHS = (320, 375, 1024)
SCHEMES = ("light", "dark")
MAX_ITEMS = 6
LETTERHEAD = Letterhead(
    "https://varsel.example.no", MAX_ITEMS, "Bufdir", "Postboks 2233, 3103 Tønsberg"
)
LINKS = MailLinks(
    "https://varsel.example.no/avmelding/TOKEN", "https://varsel.example.no/innstillinger/TOKEN"
)
LABELS = {"vold": "Vold i nære relasjoner", "barn": "Barn og unge"}
TOPICS = ("vold", "barn")
LONG_WORD = "Barnevernsinstitusjonskvalitetsforskriftsendringshøringsuttalelsesfristene"
LONG_URL = (
    "https://www.bufdir.no/"
    + "/".join(["veiledere-og-maler-for-kommunenes-krisesentertilbud"] * 4)
    + "?utgave=2024-12-02&kapittel=sikkerhet-og-risikovurdering-for-beboere-"
    + "x" * 40
)
ANNOUNCEMENT = AnnouncementView(
    1,
    "Fagdag om vold i nære relasjoner",
    f"Meld deg på **innen fredag**. Programmet: <{LONG_URL}>\n\nOgså her: {LONG_URL}",
    LONG_URL,
    (),
    START,
)


def _change(n: int, source: str, title: str, **extra: object) -> ChangeView:
    fields: dict[str, object] = {
        "change_id": n,
        "item_id": 100 + n,
        "kind": ChangeKind.NEW,
        "detected_at": START + timedelta(hours=n),
        "title": title,
        "url": f"https://{source}.example.no/sak/{n}",
        "summary": f"Sammendrag av sak {n}: hva som står i veilederen, og for hvem.",
        "published_at": START + timedelta(hours=n),
        "note": "",
        "source_key": source,
        "source_name": {"bufdir": "Bufdir", "rvts": "RVTS Vest", "nkvts": "NKVTS"}[source],
        "source_topics": ("vold",),
        **extra,
    }
    return ChangeView(**fields)  # type: ignore[arg-type]


CHANGES = [
    _change(1, "bufdir", f"Høring: {LONG_WORD} for institusjonene"),
    _change(2, "bufdir", "Ny veileder: «Trygghet først» for krisesentrene", summary=LONG_URL),
    _change(3, "bufdir", "Tilskudd <2025> & frister for kommunene"),
    _change(
        4,
        "bufdir",
        "Samtaler med barn om vold",
        kind=ChangeKind.UPDATED,
        note="Endret tekst under «Når barnet forteller»",
        editor_note="Kapittelet er skrevet om etter den nye loven",
    ),
    _change(5, "rvts", "Temahefte om vold mot eldre"),
    _change(6, "rvts", "Kurs i traumebevisst omsorg"),
    _change(7, "nkvts", "Forskning på partnervold i Norge"),
    _change(8, "nkvts", "Rapport om barn på krisesenter"),
    _change(9, "nkvts", "Ny kunnskapsoppsummering om seksuelle overgrep"),
]


def digest_in(language: str) -> Digest:
    reader = Recipient(3, "kari@kommune.no", "Kari", Frequency.WEEKLY, TOPICS, language)
    return compose(reader, CHANGES, [ANNOUNCEMENT], PERIOD)


def mail_in(language: str) -> RenderedMail:
    return render(digest_in(language), LINKS, OSLO, "Veiledervarsel", LABELS, LETTERHEAD)


def archive_url(language: str) -> str:
    return digest_url(
        LETTERHEAD.base_url, Frequency.WEEKLY, START, topics=TOPICS, language=language
    )


def parsed(language: str) -> LexborHTMLParser:
    return LexborHTMLParser(mail_in(language).html)


def style_of(node: LexborNode) -> str:
    return (node.attributes.get("style") or "").replace(" ", "")


def link_named(tree: LexborHTMLParser, text: str) -> list[LexborNode]:
    return [a for a in tree.css("a") if a.text(strip=True) == text]


# --- structure (parsed) ---------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_frame_is_tables_with_widths_in_attributes_and_a_ghost_table_for_outlook(
    language: str,
) -> None:
    html = mail_in(language).html
    tree = LexborHTMLParser(html)
    root = tree.css_first("html")
    assert root is not None
    assert (root.attributes.get("lang"), root.attributes.get("dir")) == (language, "ltr")
    body = tree.body
    assert body is not None
    # The outer structure: a full-width table holding the 600 px column, every table a
    # layout table for screen readers; the only <div> is the hidden preheader.
    outer = body.css_first("table")
    assert outer is not None and outer.attributes.get("width") == "100%"
    column = outer.css_first("table.container")
    assert column is not None
    assert column.attributes.get("width") == "600"
    assert "max-width:600px" in style_of(column) and "width:100%" in style_of(column)
    assert all(t.attributes.get("role") == "presentation" for t in body.css("table"))
    assert [d.attributes.get("class") for d in body.css("div")] == ["preheader"]
    # Outlook's Word engine ignores max-width: a table of 600 only it reads holds the column.
    ghost = re.search(r"<!--\[if mso\]>(<table[^>]*>)<tr><td[^>]*>\s*<!\[endif\]-->", html)
    assert ghost is not None and 'width="600"' in ghost[1]
    assert "<!--[if mso]></td></tr></table><![endif]-->" in html


@pytest.mark.parametrize("language", LANGUAGES)
def test_colour_schemes_are_declared_and_every_text_has_its_colour_and_background(
    language: str,
) -> None:
    tree = parsed(language)
    metas = {m.attributes.get("name"): m.attributes.get("content") for m in tree.css("meta")}
    assert metas["color-scheme"] == metas["supported-color-schemes"] == "light dark"
    (kept,) = tree.css("style")
    css = kept.text().replace(" ", "")
    assert ":root{color-scheme:lightdark;" in css
    assert "@media(prefers-color-scheme:dark)" in css
    # A client that inverts colours inverts a cell's background and its text together:
    # every cell says both, and every text element its own colour.
    cells = tree.css("body td")
    assert cells
    for cell in cells:
        assert cell.attributes.get("bgcolor"), cell.html
        assert "background-color:" in style_of(cell) and ";color:" in f";{style_of(cell)}"
    for node in tree.css("body h1, body h2, body h3, body p, body li, body a"):
        assert re.search(r"(^|;)color:#", style_of(node)), node.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_preheader_is_hidden_and_holds_the_counts_and_first_titles(language: str) -> None:
    tree = parsed(language)
    body = tree.body
    assert body is not None
    first = body.child
    while first is not None and first.tag != "div":
        first = first.next
    assert first is not None and first.attributes.get("class") == "preheader"
    style = style_of(first)
    for rule in ("display:none", "max-height:0", "overflow:hidden", "mso-hide:all"):
        assert rule in style
    text = first.text()
    digest = digest_in(language)
    new = digest.new_count
    counts = translate_plural(language, "%(num)d ny artikkel", "%(num)d nye artikler", new)
    assert text.startswith(counts % {"num": new})
    assert ANNOUNCEMENT.title in text and digest.groups[0].items[0].title in text
    assert text.endswith("\u200c\xa0" * 10)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_mail_links_to_itself_in_the_archive_and_cuts_at_the_setting(language: str) -> None:
    mail = mail_in(language)
    tree = LexborHTMLParser(mail.html)
    url = archive_url(language)
    view = link_named(tree, translate(language, "Vis i nettleseren"))
    assert [a.attributes.get("href") for a in view] == [url, url]  # at the top, in the footer
    first = tree.css_first("body a")  # the first link in the mail, above the heading
    assert first is not None and first.text(strip=True) == view[0].text(strip=True)
    # The first MAX_ITEMS changes, in their order across the groups, then the whole of it.
    items = [a for a in tree.css("h3 a") if a.text() != ANNOUNCEMENT.title]
    order = [i.title for g in digest_in(language).groups for i in g.items]
    assert [a.text() for a in items] == order[:MAX_ITEMS] and len(order) > MAX_ITEMS
    whole = translate_plural(
        language,
        "Se hele oversikten (%(num)d sak) i nettleseren",
        "Se hele oversikten (%(num)d saker) i nettleseren",
        len(CHANGES),
    ) % {"num": len(CHANGES)}
    assert [a.attributes.get("href") for a in link_named(tree, whole)] == [url]
    assert f"{whole}:\n{url}\n" in mail.text
    assert order[MAX_ITEMS] not in mail.text and order[MAX_ITEMS - 1] in mail.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_footer_names_the_sender_and_links_say_where_they_go(language: str) -> None:
    mail = mail_in(language)
    tree = LexborHTMLParser(mail.html)
    footer = tree.css_first("td.footer")
    assert footer is not None
    assert "Bufdir · Postboks 2233, 3103 Tønsberg" in footer.text()
    assert "Bufdir\nPostboks 2233, 3103 Tønsberg\n" in mail.text
    for name, href in (
        (translate(language, "Endre innstillinger"), LINKS.manage),
        (translate(language, "Meld deg av"), LINKS.unsubscribe),
    ):
        assert [a.attributes.get("href") for a in link_named(tree, name)] == [href]
    texts = [a.text(strip=True).casefold() for a in tree.css("a")]
    assert all(texts) and not any(t in ("her", "klikk her", "click here", "here") for t in texts)
    # A long title links as itself.
    assert any(LONG_WORD in t for t in (a.text() for a in tree.css("h3 a")))


def test_without_a_postal_address_the_line_names_the_sender_alone() -> None:
    bare = Letterhead(LETTERHEAD.base_url, MAX_ITEMS, "Bufdir", "")
    mail = render(digest_in("nb"), LINKS, OSLO, "Veiledervarsel", LABELS, bare)
    footer = LexborHTMLParser(mail.html).css("td.footer p")
    assert footer[-1].text(strip=True) == "Bufdir"
    assert mail.text.endswith("\nBufdir\n") and "·" not in footer[-1].text()


# --- in a browser -----------------------------------------------------------------------------


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page()
    yield opened
    opened.close()


def look(page: Page, html: str, width: int, scheme: str) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    page.set_content(html)


def assert_no_sideways_scrolling(page: Page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{scroll} px wide in a {width} px window"
    # Nothing sticks out on the right either (overflow a body could hide).
    widest = page.evaluate(
        "Math.max(...[...document.body.querySelectorAll('*')]"
        ".filter(e => e.getClientRects().length)"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= width + 0.5, f"an element reaches {widest} px in a {width} px window"


def assert_no_serious_violations(page: Page) -> None:
    results = Axe().run(page)
    serious = [
        (v["id"], [n["html"][:120] for n in v["nodes"]])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []


def luminance(css_colour: str) -> float:
    """Relative luminance (WCAG) of a computed «rgb(r, g, b)»."""
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css_colour)[:3])

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def computed(page: Page, selector: str, prop: str) -> str:
    return str(
        page.evaluate(
            "([s, p]) => getComputedStyle(document.querySelector(s)).getPropertyValue(p)",
            [selector, prop],
        )
    )


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_digest_holds_at_every_width_in_both_schemes(
    page: Page, language: str, width: int, scheme: str
) -> None:
    look(page, mail_in(language).html, width, scheme)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(SCREENSHOTS / f"mail-{language}-weekly-{width}-{scheme}.png"), full_page=True
    )
    assert_no_sideways_scrolling(page, width)
    column = page.evaluate(
        "document.querySelector('table.container').getBoundingClientRect().width"
    )
    assert column == (600 if width > 620 else width)
    # The preheader is not seen; the first title is, with the words of its long name wrapped.
    assert not page.is_visible("div.preheader")
    assert page.is_visible(f"text={CHANGES[0].title}")
    card, text = computed(page, "td.card", "background-color"), computed(page, "h1", "color")
    if scheme == "dark":
        assert luminance(card) < 0.05 and luminance(text) > 0.6
    else:
        assert luminance(card) > 0.9 and luminance(text) < 0.05
    assert_no_serious_violations(page)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("kind", ["confirm", "already", "link"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_notices_hold_on_a_phone_in_both_schemes(
    page: Page, language: str, kind: str, scheme: str
) -> None:
    mail = render_notice(
        kind,
        service_name="Veiledervarsel",
        email=f"{LONG_WORD.lower()}@kommune.no",
        name="Kari",
        confirm_url=LONG_URL,
        links=LINKS,
        language=language,
        letterhead=LETTERHEAD,
    )
    look(page, mail.html, 320, scheme)
    page.screenshot(
        path=str(SCREENSHOTS / f"notice-{kind}-{language}-320-{scheme}.png"), full_page=True
    )
    assert_no_sideways_scrolling(page, 320)
    assert_no_serious_violations(page)
