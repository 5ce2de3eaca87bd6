"""Golden messages: whole digests and notices as an SMTP server receives them, compared with
the files in tests/golden/ after the volatile parts are masked.

The mails are made the way operators and people make them (the `digest` command, the web
forms) on fixed data and fixed times, so a change to a template, a catalogue or a header
shows up as a diff of these files. After a deliberate change, regenerate and review:

    DIGEST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py
"""

from __future__ import annotations

import difflib
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from digest.commands.main import main
from digest.core.db import session_scope
from digest.core.models import Change, Item, Source
from digest.core.settings import Settings, get_settings
from digest.mail.render import render
from tests.support.smtp import SMTPServer

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DIGEST_UPDATE_GOLDEN") == "1"
OSLO = ZoneInfo("Europe/Oslo")

LANGUAGES = ("nb", "nn", "en")
FREQUENCIES = ("daily", "weekly", "immediate")
NOTICE_KINDS = ("confirm", "already", "link")  # digest.delivery.notices.KINDS
# The footer's sender and postal address (settings).
SENDER = "Barne-, ungdoms- og familiedirektoratet"
POSTAL_ADDRESS = "Postboks 2233, 3103 Tønsberg"
MAX_ITEMS = 3  # with the announcement (the plain goldens keep the default)
# A Monday at the daily hour: the end of a daily, a weekly and an immediate period at once.
RUN_AT = "2025-11-24T08:00"

SOURCES = """
[topics]
vold = "Vold i nære relasjoner"
barn = "Barn og unge"
krisesenter = "Krisesentertilbudet"

[[source]]
key = "bufdir"
name = "Bufdir"
kind = "feed"
url = "https://www.bufdir.no/feed"
topics = ["vold", "krisesenter"]

[[source]]
key = "rvts-vest"
name = "RVTS Vest"
kind = "feed"
url = "https://rvtsvest.no/feed"
topics = ["vold"]

[[source]]
key = "jeg-vet"
name = "Jeg Vet"
kind = "feed"
url = "https://www.jegvet.no/feed"
topics = ["barn"]
"""


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    topics: tuple[str, ...]


# One reader per language; their topics differ so that filtering and the footer's topic
# list are covered too (nynorsk takes every topic, so the footer names none).
PEOPLE = {
    "nb": Person("Kari Ødegård", ("vold",)),
    "nn": Person("Åse Fjellheim", ()),
    "en": Person("Emma Smith", ("barn", "vold")),
}


@dataclass(frozen=True, slots=True)
class Seeded:
    """A change as a site would have produced it; times are Oslo wall-clock."""

    source: str
    key: str
    title: str
    kind: str
    detected: str
    published: str | None = None
    summary: str = ""
    note: str = ""


# Immediate covers 07:45-08:00 on the 24th, daily the day before it, weekly the week.
CHANGES = (
    Seeded(
        "bufdir",
        "trygghet",
        "Ny veileder: «Trygghet først» for krisesentrene",
        "new",
        "2025-11-24T07:50",
        published="2025-11-24T07:30",
        summary=(
            "Veilederen samler det krisesentrene trenger om fysisk sikkerhet, risikovurdering "
            "og samarbeid med politiet, med sjekklister for de første døgnene etter innflytting."
        ),
    ),
    Seeded(
        "jeg-vet",
        "trygghet",
        "Ny veileder: «Trygghet først» for krisesentrene",
        "new",
        "2025-11-24T07:55",
        summary="Omtale av den nye veilederen.",
    ),
    Seeded(
        "rvts-vest",
        "samtaler",
        "Samtaler med barn om vold",
        "new",
        "2025-10-01T10:00",
        published="2025-09-30T12:00",
    ),
    Seeded(
        "rvts-vest",
        "samtaler",
        "Samtaler med barn om vold",
        "updated",
        "2025-11-24T07:52",
        published="2025-09-30T12:00",
        summary="Hvordan du åpner en samtale, og hva du gjør når barnet forteller.",
        note="Endret tekst under «Når barnet forteller»",
    ),
    Seeded(
        "bufdir",
        "tilskudd",
        "Tilskudd <2026> & frister for kommunene",
        "new",
        "2025-11-23T12:00",
        published="2025-11-23T11:00",
        summary="Søknadsfristen er 1. februar.",
    ),
    Seeded(
        "rvts-vest",
        "eldre",
        "Temahefte om vold mot eldre",
        "new",
        "2025-11-20T10:00",
    ),
)

ANNOUNCEMENT = (
    "--title",
    "Fagdag om vold i nære relasjoner",
    "--body",
    "Meld deg på **innen fredag 5. desember**.\n\nGratis for ansatte i kommunene.",
    "--link",
    "https://www.bufdir.no/fagdag",
    "--from",
    "2025-11-20T09:00",
)


# --- comparing with the golden files ----------------------------------------------------------


def assert_golden(produced: dict[str, str]) -> None:
    """Each text equals its file under tests/golden/; with DIGEST_UPDATE_GOLDEN=1 the files
    are written instead. Every mismatch is reported, as a unified diff, before failing."""
    diffs = []
    for name, text in sorted(produced.items()):
        path = GOLDEN / name
        expected = path.read_text(encoding="utf-8") if path.exists() else None
        if text == expected:
            continue
        if UPDATE:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            continue
        diffs.append(
            "".join(
                difflib.unified_diff(
                    (expected or "").splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"tests/golden/{name}" + ("" if expected is not None else " (missing)"),
                    "produced",
                )
            )
        )
    if diffs:
        pytest.fail(
            "\n".join(diffs) + "\nIf the change is meant, regenerate and review the files: "
            "DIGEST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py",
            pytrace=False,
        )


def normalised(message: EmailMessage, base_url: str) -> str:
    """The message as readable text: its headers decoded, each part decoded, and whatever
    differs from one sending to the next (date, Message-ID, boundary, tokens) masked."""
    lines = [f"{name}: {_masked_header(name, str(value))}" for name, value in message.items()]
    parts = list(message.iter_parts()) if message.is_multipart() else [message]
    for part in parts:
        lines += ["", "--BOUNDARY"]
        lines += [f"{name}: {value}" for name, value in part.items()]
        # Parsed off the wire, the parts keep its CRLF line ends.
        lines += ["", part.get_content().replace("\r\n", "\n").rstrip("\n")]
    if message.is_multipart():
        lines.append("--BOUNDARY--")
    # A signed token in any link to us: /avmelding/<token>, /bekreft/<token> ... The
    # archive's addresses (/arkiv/...) hold no token and stay as they are.
    tokens = re.compile(re.escape(base_url) + r"(/(?!arkiv/)[\w-]+/)[^\s\"'<>]+")
    return tokens.sub(base_url + r"\1TOKEN", "\n".join(lines) + "\n")


def _masked_header(name: str, value: str) -> str:
    if name.lower() == "date":
        return "DATE"
    if name.lower() == "message-id":
        # Derived from row ids (digest-run1-sub3, notice5): the shape stays, the ids go.
        return re.sub(r"\d+(?=[^@]*@)", "N", value)
    return re.sub(r'boundary="?[^";]+"?', 'boundary="BOUNDARY"', value)


# --- making the mails the public way ----------------------------------------------------------


def digest(*args: str) -> str:
    """Run a `digest` subcommand as an operator would, in this process; it must succeed."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def oslo(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=OSLO).astimezone(UTC)


def seed_changes(settings: Settings) -> None:
    """Items and their changes, as collecting the sources would have stored them."""
    with session_scope(settings.database_url) as session:
        sources = {s.key: s.id for s in session.scalars(select(Source))}
        items: dict[tuple[str, str], Item] = {}
        for seeded in CHANGES:
            url = f"https://{seeded.source}.example.no/{seeded.key}"
            published = oslo(seeded.published) if seeded.published else None
            item = items.get((seeded.source, seeded.key))
            if item is None:
                item = Item(
                    source_id=sources[seeded.source],
                    key=url,
                    url=url,
                    title=seeded.title,
                    content_hash=seeded.key,
                    published_at=published,
                    first_seen_at=oslo(seeded.detected),
                    last_seen_at=oslo(seeded.detected),
                )
                session.add(item)
                session.flush()
                items[(seeded.source, seeded.key)] = item
            session.add(
                Change(
                    item_id=item.id,
                    kind=seeded.kind,
                    detected_at=oslo(seeded.detected),
                    title=seeded.title,
                    url=url,
                    summary_text=seeded.summary,
                    published_at=published,
                    note=seeded.note,
                )
            )


@pytest.fixture
def settings(settings: Settings, env: pytest.MonkeyPatch) -> Settings:
    """The test settings (conftest's) with a sender and a postal address for the footers."""
    env.setenv("DIGEST_SENDER_NAME", SENDER)
    env.setenv("DIGEST_POSTAL_ADDRESS", POSTAL_ADDRESS)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def golden_settings(settings: Settings, env: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The test settings with our own catalogue of sources, synced as an operator would."""
    sources = tmp_path / "golden-sources.toml"
    sources.write_text(SOURCES, encoding="utf-8")
    env.setenv("DIGEST_SOURCES_FILE", str(sources))
    get_settings.cache_clear()
    digest("sources", "sync")
    return get_settings()


def wait_for_mail(smtp: SMTPServer, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(smtp.inbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(smtp.inbox.messages) == count, [m["To"] for m in smtp.inbox.messages]


def by_recipient(smtp: SMTPServer) -> dict[str, EmailMessage]:
    return {m["To"].addresses[0].addr_spec: m for m in smtp.inbox.messages}


# --- the goldens ------------------------------------------------------------------------------


@pytest.mark.parametrize("announcement", [False, True], ids=["plain", "announcement"])
def test_digest_messages_match_their_goldens(
    golden_settings: Settings, smtp: SMTPServer, env: pytest.MonkeyPatch, announcement: bool
) -> None:
    """Every language and frequency; with the announcement, digests hold at most three
    changes, so the weekly ones (four) show three and link to the whole of it."""
    if announcement:
        env.setenv("DIGEST_DIGEST_MAX_ITEMS", str(MAX_ITEMS))
        get_settings.cache_clear()
    for language in LANGUAGES:
        person = PEOPLE[language]
        topics = [arg for topic in person.topics for arg in ("--topic", topic)]
        for frequency in FREQUENCIES:
            digest(
                "subscribers",
                "add",
                f"{language}.{frequency}@kommune.no",
                "--name",
                person.name,
                "--frequency",
                frequency,
                "--language",
                language,
                "--confirmed",
                *topics,
            )
    seed_changes(golden_settings)
    if announcement:
        digest("announce", "add", *ANNOUNCEMENT)
    for frequency in FREQUENCIES:
        digest("send", frequency, "--at", RUN_AT)
    wait_for_mail(smtp, len(LANGUAGES) * len(FREQUENCIES))
    received = by_recipient(smtp)
    suffix = "-announcement" if announcement else ""
    assert_golden(
        {
            f"digest-{frequency}-{language}{suffix}.eml.txt": normalised(
                received[f"{language}.{frequency}@kommune.no"], golden_settings.base_url
            )
            for language in LANGUAGES
            for frequency in FREQUENCIES
        }
    )


def csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found, f"no CSRF field on {path}"
    return found[1]


def test_notice_messages_match_their_goldens(
    settings: Settings, client: httpx.Client, smtp: SMTPServer
) -> None:
    """Each notice kind in each language, asked for through the web forms: a new address
    gets a confirmation, a subscriber signing up again is told they already subscribe,
    and a subscriber asking for their link gets it."""
    for language in LANGUAGES:
        for kind in ("already", "link"):
            digest(
                "subscribers",
                "add",
                f"{language}.{kind}@kommune.no",
                "--name",
                PEOPLE[language].name,
                "--language",
                language,
                "--confirmed",
            )
    token = csrf(client, "/")
    answers = []
    for language in LANGUAGES:
        form = {"frequency": "weekly", "language": language, "name": "Ny Person", "csrf": token}
        for email in (f"{language}.confirm@kommune.no", f"{language}.already@kommune.no"):
            answers.append(client.post("/abonner", data={**form, "email": email}))
        link = {"email": f"{language}.link@kommune.no", "csrf": token}
        answers.append(client.post("/lenke", data=link))
    assert [a.status_code for a in answers] == [200] * len(answers)
    wait_for_mail(smtp, 3 * len(LANGUAGES))
    received = by_recipient(smtp)
    assert_golden(
        {
            f"notice-{kind}-{language}.eml.txt": normalised(
                received[f"{language}.{kind}@kommune.no"], settings.base_url
            )
            for language in LANGUAGES
            for kind in NOTICE_KINDS
        }
    )


def test_rendered_text_part_matches_its_golden() -> None:
    """The text part of one bokmål daily digest, rendered from composed data alone."""
    from tests.test_mail import LINKS, sample_digest

    mail = render(
        sample_digest(), LINKS, OSLO, "Veiledervarsel", {"vold": "Vold i nære relasjoner"}
    )
    assert_golden({"render-digest-daily-nb.txt": mail.text})


def test_every_golden_file_is_made_by_a_test() -> None:
    """A file no test makes any more (a renamed kind, a dropped language) is stale."""
    made = {"render-digest-daily-nb.txt"}
    made |= {
        f"digest-{frequency}-{language}{suffix}.eml.txt"
        for frequency in FREQUENCIES
        for language in LANGUAGES
        for suffix in ("", "-announcement")
    }
    made |= {f"notice-{kind}-{language}.eml.txt" for kind in NOTICE_KINDS for language in LANGUAGES}
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(made)
