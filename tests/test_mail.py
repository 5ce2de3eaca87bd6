"""Rendering and sending: templates, headers, encoding, and what SMTP failures mean."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from selectolax.lexbor import LexborHTMLParser

from digest.core.models import ChangeKind
from digest.core.periods import Period
from digest.core.settings import Settings
from digest.mail.compose import AnnouncementView, ChangeView, Digest, Recipient, compose
from digest.mail.letter import Letterhead
from digest.mail.mailer import Envelope, OutboxTransport, SendError, SMTPTransport, build_message
from digest.mail.render import MailLinks, render
from digest.mail.wire import MAIL_POLICY
from subscribers.models import Frequency
from tests.support.smtp import SMTPServer

OSLO = ZoneInfo("Europe/Oslo")
START = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
PERIOD = Period(Frequency.DAILY, START, START + timedelta(days=1))
LINKS = MailLinks("https://varsel.no/avmelding/TOKEN", "https://varsel.no/innstillinger/TOKEN")
LETTERHEAD = Letterhead("https://varsel.no", 30, "Bufdir", "Postboks 2233, 3103 Tønsberg")


def sample_digest() -> Digest:
    changes = [
        ChangeView(
            1,
            10,
            ChangeKind.NEW,
            START + timedelta(hours=2),
            "Ny veileder: «Trygghet først»",
            "https://bufdir.no/a",
            "Kapittelet om fysisk sikkerhet er skrevet om.",
            datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
            "",
            "bufdir",
            "Bufdir",
            ("vold",),
        ),
        ChangeView(
            2,
            11,
            ChangeKind.UPDATED,
            START + timedelta(hours=5),
            "<script>alert(1)</script> Æøå",
            "https://rvtsvest.no/b",
            "Endra tekst.",
            None,
            "Endret tekst under «Samtalen»",
            "rvts-vest",
            "RVTS Vest",
            ("vold",),
        ),
    ]
    ann = AnnouncementView(
        7, "Kurs i desember", "Meld deg på **innen fredag**.", "https://bufdir.no/kurs", (), START
    )
    recipient = Recipient(3, "kari@kommune.no", "Kari Ødegård", Frequency.DAILY, ("vold",))
    return compose(recipient, changes, [ann], PERIOD)


def envelope(to: str = "kari@kommune.no") -> Envelope:
    return Envelope(
        "varsel@veiledervarsel.no",
        "Veiledervarsel",
        to,
        "Kari Ødegård",
        "digest-run1-sub3@veiledervarsel.no",
        "Veiledervarsel <digest.veiledervarsel.no>",
        LINKS.unsubscribe,
        datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
    )


def test_subject_html_and_escaping() -> None:
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    assert (
        mail.subject
        == "Veiledervarsel 26. november 2026: 1 ny artikkel, 1 oppdatert, 1 kunngjøring"
    )
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "<strong>innen fredag</strong>" in mail.html  # Markdown, sanitised
    # CSS inlined; the one <style> left is the kept one (media queries, dark mode), besides
    # Outlook's own inside its conditional comment.
    styles = LexborHTMLParser(mail.html).css("style")
    assert [s.attributes.get("data-css-inline") for s in styles] == ["keep"]
    assert "@media" in styles[0].text() and 'style="' in mail.html
    assert mail.html.index("Kurs i desember") < mail.html.index("Ny veileder")
    assert LINKS.unsubscribe in mail.html and LINKS.manage in mail.html
    assert 'lang="nb"' in mail.html and "width=device-width" in mail.html


def test_message_headers_and_encoding() -> None:
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    raw = build_message(mail, envelope()).as_bytes()
    assert max(len(line) for line in raw.splitlines()) <= 998
    header_block = raw.split(b"\n\n", 1)[0]
    assert header_block.isascii()  # æøå travel encoded (RFC 2047)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"] == "Kari Ødegård <kari@kommune.no>"
    assert parsed["Subject"] == mail.subject
    assert parsed["Message-ID"] == "<digest-run1-sub3@veiledervarsel.no>"
    assert parsed["List-Unsubscribe"] == f"<{LINKS.unsubscribe}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_one_smtp_connection_sends_a_batch(smtp: SMTPServer) -> None:
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")

    async def send_three() -> None:
        transport = SMTPTransport(smtp.url)
        for n in range(3):
            await transport.send(build_message(mail, envelope(f"k{n}@kommune.no")))
        await transport.close()

    asyncio.run(send_three())
    assert len(smtp.inbox.messages) == 3
    assert smtp.inbox.messages[0]["Subject"] == mail.subject


@pytest.mark.parametrize(
    ("reply", "permanent"), [("550 5.1.1 No such user", True), ("451 4.3.0 Try later", False)]
)
def test_refused_recipient_is_permanent_or_temporary(
    smtp: SMTPServer, reply: str, permanent: bool
) -> None:
    smtp.inbox.refuse["nei@kommune.no"] = reply
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")

    async def send() -> None:
        transport = SMTPTransport(smtp.url)
        try:
            await transport.send(build_message(mail, envelope("nei@kommune.no")))
        finally:
            await transport.close()

    with pytest.raises(SendError) as info:
        asyncio.run(send())
    assert info.value.permanent is permanent
    assert info.value.recipient and not info.value.relay  # the recipient's, not the relay's


def test_unreachable_smtp_server_is_a_temporary_failure() -> None:
    from tests.support.smtp import free_port

    transport = SMTPTransport(f"smtp://127.0.0.1:{free_port()}")
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    with pytest.raises(SendError) as info:
        asyncio.run(transport.send(build_message(mail, envelope())))
    assert info.value.permanent is False and info.value.relay


def test_the_outbox_writes_after_being_opened_as_the_senders_open_it(tmp_path: Path) -> None:
    """Sending opens the transport first; the folder that makes must still take mail, and
    so must one an operator made beforehand."""
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    for folder in (tmp_path / "fresh", tmp_path / "made-before"):
        if folder.name == "made-before":
            folder.mkdir()
        outbox = OutboxTransport(folder)

        async def send_one(outbox: OutboxTransport = outbox) -> None:
            await outbox.open()
            await outbox.send(build_message(mail, envelope()))
            await outbox.close()

        asyncio.run(send_one())
        assert len(list((folder / "new").iterdir())) == 1


def test_outbox_writes_a_maildir(tmp_path: Path) -> None:
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    asyncio.run(OutboxTransport(tmp_path / "outbox").send(build_message(mail, envelope())))
    files = list((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 1 and b"List-Unsubscribe-Post" in files[0].read_bytes()


@pytest.mark.parametrize("address", ["kari@kommune.no", "æøå@kommune.no"])
def test_the_outbox_writes_what_it_wrote_before_it_took_wire_bytes(
    tmp_path: Path, address: str
) -> None:
    """Maildir readers get LF line ends, and the same bytes as when the outbox flattened
    the message itself."""
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    message = build_message(mail, envelope(address))
    asyncio.run(OutboxTransport(tmp_path / "o").send(message))
    (path,) = (tmp_path / "o" / "new").iterdir()
    utf8 = not address.isascii()
    assert path.read_bytes() == message.as_bytes(policy=MAIL_POLICY.clone(utf8=utf8))


def test_smtp_url_forms() -> None:
    plain = SMTPTransport("smtp://user%40x:p%3Ass@mail.kommune.no:2525")
    assert (plain.hostname, plain.port, plain.username, plain.password) == (
        "mail.kommune.no",
        2525,
        "user@x",
        "p:ss",
    )
    assert SMTPTransport("smtp://relay?starttls=true").port == 587
    tls = SMTPTransport("smtps://relay")
    assert tls.implicit_tls and tls.port == 465


@pytest.mark.parametrize(
    ("language", "subject", "words"),
    [
        (
            "nn",
            "Veiledervarsel 26. november 2026: 1 ny artikkel, 1 oppdatert, 1 kunngjering",
            [
                "Nytt og endra i rettleiarane onsdag 25. november 2026 kl. 08.00 – "
                "torsdag 26. november 2026 kl. 08.00",
                "FRÅ REDAKSJONEN",
                "Endre innstillingar:\nhttps://varsel.no/innstillinger/TOKEN",
                "abonnerer på ei dagleg oversikt frå Veiledervarsel.",
                "Vis i nettlesaren:\nhttps://varsel.no/arkiv/daglig/2026-11-25T0700Z?tema=vold&lang=nn",
            ],
        ),
        (
            "en",
            "Veiledervarsel 26 November 2026: 1 new article, 1 updated, 1 announcement",
            [
                "New and changed in the guidance Wednesday 25 November 2026, 08:00 – "
                "Thursday 26 November 2026, 08:00",
                "FROM THE EDITORS",
                "Ny veileder: «Trygghet først»\nNew, 25 November\nhttps://bufdir.no/a",
                "Unsubscribe:\nhttps://varsel.no/avmelding/TOKEN",
                "subscribes to a daily digest from Veiledervarsel.",
                "What changed: Endret tekst under «Samtalen»",
            ],
        ),
    ],
)
def test_mail_in_the_subscribers_language(language: str, subject: str, words) -> None:
    digest = sample_digest()
    digest = replace(digest, recipient=replace(digest.recipient, language=language))
    mail = render(digest, LINKS, OSLO, "Veiledervarsel", {}, LETTERHEAD)
    assert mail.subject == subject
    for word in words:
        assert word in mail.text
    assert f'lang="{language}"' in mail.html


def test_notices_in_the_subscribers_language() -> None:
    from digest.mail.render import render_notice

    mail = render_notice(
        "confirm",
        service_name="Veiledervarsel",
        email="k@kommune.no",
        name="Kari",
        confirm_url="https://varsel.no/bekreft/T",
        links=LINKS,
        language="en",
    )
    assert mail.subject == "Confirm your subscription to Veiledervarsel"
    assert "Hello Kari!" in mail.text and "https://varsel.no/bekreft/T" in mail.text
    nynorsk = render_notice(
        "link",
        service_name="Veiledervarsel",
        email="k@kommune.no",
        name="",
        confirm_url="",
        links=LINKS,
        language="nn",
    )
    assert nynorsk.subject == "Lenkja til innstillingane dine i Veiledervarsel"
    assert "Meld deg av:\nhttps://varsel.no/avmelding/TOKEN" in nynorsk.text


# --- Header safety (issue 7, item 1) and non-ASCII addresses (item 15) ----------------


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("subject", "Hei\r\nBcc: x@evil.example", "line break"),
        ("subject", "Hei\nBcc: x@evil.example", "line break"),
        ("subject", "=?utf-8?q?Hei=0D=0ABcc:_x@evil.example?=", "encoded word"),
        ("subject", "Faktura \u202efdp.exe", "control or invisible"),
        ("list_id", "Varsel <digest.x.no>\r\nBcc: x@evil.example", "line break"),
        ("message_id", "a@b\rBcc: x", "line break"),
        ("unsubscribe_url", "https://x.no/a\nBcc: x", "line break"),
        ("to_address", "kari@kommune.no\r\nBcc: x@evil.example", "line break"),
        ("to_address", "kari@kommune.no>, x@evil.example", "not a mail address"),
        ("to_address", "kari@kommune.no>", "not a mail domain"),
        ("from_address", "varsel@x.no\x00", "control or invisible"),
    ],
)
def test_build_message_refuses_an_unsafe_header_value(field: str, value: str, reason: str) -> None:
    from digest.mail.mailer import MessageError

    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    if field == "subject":
        mail, env = replace(mail, subject=value), envelope()
    else:
        mail, env = mail, replace(envelope(), **{field: value})
    with pytest.raises(MessageError, match=reason):
        build_message(mail, env)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("=?utf-8?q?Kari=0D=0AReply-To:_x@evil.example?=", "Kari Reply-To: x@evil.example"),
        (
            "=?utf-8?q?Kari=0D=0AReply-To:_x@evil.example?= =?bogus?q?z?=",
            "Kari Reply-To: x@evil.example",
        ),
        ("Kari\r\nBcc: x@evil.example", "Kari Bcc: x@evil.example"),
        ("Kari \u202eØdegård\u200b", "Kari Ødegård"),
        ("=?x?q?a?= =?y?q?b?=", ""),
        ("Ola =?", "Ola = ?"),
    ],
)
def test_names_are_reduced_to_one_safe_line_before_the_email_package(raw: str, clean: str) -> None:
    safe = replace(envelope(), to_name=raw, from_name=raw)
    assert safe.to_name == clean and safe.from_name == clean
    raw_message = build_message(render(sample_digest(), LINKS, OSLO, "V"), safe).as_bytes()
    parsed = message_from_bytes(raw_message, policy=policy.default)
    assert parsed["To"].addresses[0].display_name == clean
    assert "Reply-To" not in parsed and "Bcc" not in parsed


def test_a_subject_is_one_safe_line_whatever_the_service_name() -> None:
    mail = render(sample_digest(), LINKS, OSLO, "Varsel\r\nBcc: x@evil.example")
    assert mail.subject.startswith("Varsel Bcc: x@evil.example 26. november 2026:")


def test_domains_go_out_idna_encoded() -> None:
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    raw = build_message(mail, envelope("test@bærum.kommune.no")).as_bytes()
    assert raw.split(b"\n\n", 1)[0].isascii()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "test@xn--brum-voa.kommune.no"


def test_the_outbox_keeps_a_non_ascii_address_readable(tmp_path: Path) -> None:
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")
    asyncio.run(OutboxTransport(tmp_path / "o").send(build_message(mail, envelope("æøå@x.no"))))
    (path,) = (tmp_path / "o" / "new").iterdir()
    parsed = message_from_bytes(path.read_bytes(), policy=policy.SMTPUTF8)
    assert "æøå@x.no".encode() in path.read_bytes() and "=?" not in str(parsed["To"])


def test_a_relay_without_smtputf8_refuses_one_address_not_the_connection() -> None:
    from aiosmtpd.controller import Controller

    from tests.support.smtp import Inbox, free_port

    inbox, port = Inbox(), free_port()
    relay = Controller(inbox, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel")

    async def send_two() -> SendError:
        transport = SMTPTransport(f"smtp://127.0.0.1:{port}")
        try:
            with pytest.raises(SendError) as info:
                await transport.send(build_message(mail, envelope("æøå@kommune.no")))
            await transport.send(build_message(mail, envelope("ok@kommune.no")))
            return info.value
        finally:
            await transport.close()

    relay.start()
    try:
        refused = asyncio.run(send_two())
    finally:
        relay.stop()
    assert refused.permanent and not refused.recipient and "SMTPUTF8" in str(refused)
    assert [e[1] for e in inbox.envelopes] == [["ok@kommune.no"]]


def test_announcements_keep_no_invisible_or_control_characters(settings: Settings) -> None:
    from digest.core.db import session_scope
    from digest.delivery.announcements import AnnouncementError, add_announcement

    with session_scope(settings.database_url) as session:
        item = add_announcement(
            session,
            title="Kurs\u202e i\u200b samtaler\r\nBcc: x@evil.example",
            body="Første linje\u2066\n\n* punkt\u200d to",
        )
        assert item.title == "Kurs i samtaler Bcc: x@evil.example"
        assert item.body == "Første linje\n\n* punkt to"
        with pytest.raises(AnnouncementError):
            add_announcement(session, title="x", link="https://x.no/\r\nBcc: y")


# --- The letterhead: settings the mail's frame shows (issue 11) ------------------------


def test_the_letterhead_comes_from_the_settings_and_is_part_of_the_rendering_key(
    env: pytest.MonkeyPatch,
) -> None:
    from digest.core.settings import get_settings
    from digest.mail.render import digest_template

    env.setenv("DIGEST_BASE_URL", "https://varsel.no/")
    env.setenv("DIGEST_POSTAL_ADDRESS", "Postboks 2233, 3103 Tønsberg")
    env.setenv("DIGEST_DIGEST_MAX_ITEMS", "1")
    letterhead = Letterhead.of(get_settings())
    assert letterhead == Letterhead(
        "https://varsel.no", 1, "Veiledervarsel", "Postboks 2233, 3103 Tønsberg"
    )
    digest = sample_digest()
    first = digest_template(digest, OSLO, "Veiledervarsel", {}, letterhead)
    same = Letterhead.of(get_settings())  # equal settings: the same rendering
    assert digest_template(digest, OSLO, "Veiledervarsel", {}, same) is first
    for other in (
        replace(letterhead, base_url="https://annen.no"),
        replace(letterhead, max_items=2),
        replace(letterhead, sender_name="Bufdir"),
        replace(letterhead, postal_address=""),
    ):
        again = digest_template(digest, OSLO, "Veiledervarsel", {}, other)
        assert again is not first and again != first


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIGEST_SENDER_NAME", ""),
        ("DIGEST_SENDER_NAME", "Bufdir\r\nBcc: x@evil.example"),
        ("DIGEST_POSTAL_ADDRESS", "Postboks 2233\n3103 Tønsberg"),
        ("DIGEST_POSTAL_ADDRESS", "Postboks \u202e2233"),
        ("DIGEST_POSTAL_ADDRESS", "x" * 201),
        ("DIGEST_DIGEST_MAX_ITEMS", "0"),
    ],
)
def test_the_letterhead_settings_are_one_short_line(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from pydantic import ValidationError

    from digest.core.settings import describe_error, get_settings

    env.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        get_settings()
    assert name in describe_error(info.value)


def test_the_footer_leaves_out_an_empty_postal_address() -> None:
    with_address = render(sample_digest(), LINKS, OSLO, "Veiledervarsel", {}, LETTERHEAD)
    assert with_address.text.endswith("\nBufdir\nPostboks 2233, 3103 Tønsberg\n")
    assert "Bufdir · Postboks 2233, 3103 Tønsberg</p>" in with_address.html
    without = replace(LETTERHEAD, postal_address="")
    mail = render(sample_digest(), LINKS, OSLO, "Veiledervarsel", {}, without)
    assert mail.text.endswith("\nBufdir\n") and "Bufdir</p>" in mail.html


def test_a_reader_narrowed_to_their_role_gets_the_archive_with_it() -> None:
    from digest.core.archive_links import digest_url
    from digest.mail.render import digest_template

    digest = sample_digest()
    leader = replace(digest.recipient, role="kommunal-ledelse", audiences=("ledere",))
    narrowed = replace(digest, recipient=leader)
    url = digest_url(
        LETTERHEAD.base_url,
        Frequency.DAILY,
        START,
        topics=("vold",),
        role="kommunal-ledelse",
        narrowed=True,
        language="nb",
    )
    mail = render(narrowed, LINKS, OSLO, "Veiledervarsel", {}, LETTERHEAD)
    assert f"Vis i nettleseren:\n{url}\n" in mail.text
    assert url.replace("&", "&amp;") in mail.html
    assert "Du får bare det som er laget for rollen din." in mail.text
    # A role the reader is not narrowed to, with no announcement for it, changes nothing
    # the archive shows: the link leaves it out, and such readers share a rendering.
    wide = replace(digest, recipient=replace(leader, audiences=()))
    other = render(wide, LINKS, OSLO, "Veiledervarsel", {}, LETTERHEAD)
    assert "rolle=" not in other.text and "rollen din" not in other.text
    # Two roles with the same audiences have different links: two renderings.
    nurse = replace(digest, recipient=replace(leader, role="helse-omsorg"))
    first = digest_template(narrowed, OSLO, "Veiledervarsel", {}, LETTERHEAD)
    assert digest_template(nurse, OSLO, "Veiledervarsel", {}, LETTERHEAD) is not first
