"""Digests on the wire: a template rendered once and filled per reader makes the mail
`render` makes, and `digest_wire` puts the bytes `build_message` + `wire_of` put, for any
names, addresses, subjects and bodies, refusing what build_message refuses."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.mail.compose import Digest
from digest.mail.mailer import Envelope, MessageError, build_message
from digest.mail.render import (
    EMAIL_SLOT,
    MANAGE_SLOT,
    UNSUBSCRIBE_SLOT,
    MailLinks,
    MailTemplate,
    digest_template,
    render,
    rendered,
)
from digest.mail.wire import Wire, digest_wire, wire_of
from tests.test_mail import LINKS, OSLO, envelope, sample_digest

SERVICE = "Veiledervarsel"
LABELS = {"vold": "Vold i nære relasjoner"}


def outcome(make: object) -> Wire | tuple[str, str]:
    """The wire a maker returns, or the kind of error it raises (and for a MessageError,
    the header refused): what both ways of making a mail must agree on."""
    assert callable(make)
    try:
        wire = make()
    except MessageError as exc:
        return ("MessageError", exc.header)
    except Exception as exc:  # the email package's own, on values it cannot take
        return (type(exc).__name__, "")
    assert isinstance(wire, Wire)
    # The boundary is random in both: the same name on both sides.
    found = re.search(rb'boundary="([^"]+)"', wire.data)
    assert found is not None
    return replace(wire, data=wire.data.replace(found[1], b"BOUNDARY"))


def assert_same_wire(template: MailTemplate, env: Envelope, links: MailLinks, email: str) -> None:
    expected = outcome(lambda: wire_of(build_message(template.fill(email, links), env)))
    produced = outcome(lambda: digest_wire(template, env, links, email))
    if isinstance(expected, tuple) and expected[0] != "MessageError":
        # A value the email package itself cannot take (an empty Message-ID): refused too,
        # though maybe for a value build_message had not come to.
        assert isinstance(produced, tuple)
    else:
        assert produced == expected


def test_a_digest_goes_on_the_wire_as_build_message_makes_it() -> None:
    digest = sample_digest()
    template = digest_template(digest, OSLO, SERVICE, LABELS)
    mail = render(digest, LINKS, OSLO, SERVICE, LABELS)
    assert template.fill(digest.recipient.email, LINKS) == mail
    expected = outcome(lambda: wire_of(build_message(mail, envelope())))
    assert outcome(lambda: digest_wire(template, envelope(), LINKS, "kari@kommune.no")) == expected


def test_readers_with_the_same_content_share_one_template() -> None:
    digest = sample_digest()
    other = replace(
        digest, recipient=replace(digest.recipient, subscriber_id=9, email="o@x.no", name="Ola")
    )
    first = digest_template(digest, OSLO, SERVICE, LABELS)
    assert digest_template(other, OSLO, SERVICE, dict(LABELS)) is first
    nynorsk = replace(digest, recipient=replace(digest.recipient, language="nn"))
    assert digest_template(nynorsk, OSLO, SERVICE, LABELS) is not first
    mail = first.fill("o@x.no", LINKS)
    assert "o@x.no" in mail.text and "o@x.no" in mail.html and "kari@" not in mail.html


def _reference(digest: Digest, email: str, links: MailLinks) -> tuple[str, str, str]:
    """The digest rendered with the reader's own values in the templates."""
    whole = rendered(digest, OSLO, SERVICE, ("Vold i nære relasjoner",), email, links)
    return whole.subject, whole.html, whole.text.strip() + "\n"


# Addresses and links with whatever escaping, line ends and blanks can do to them.
awkward = st.one_of(
    st.text(
        st.sampled_from([*"aæ<>&\"' \u00a0\r\n\t\x00.@-/?=#%;:{}", "x", "ø", "\u200b"]),
        max_size=12,
    ),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(email=awkward, manage=awkward, unsubscribe=awkward)
def test_filling_a_template_makes_what_rendering_with_the_values_makes(
    email: str, manage: str, unsubscribe: str
) -> None:
    digest = sample_digest()
    links = MailLinks(unsubscribe=f"https://v.no/{unsubscribe}", manage=manage)
    mail = digest_template(digest, OSLO, SERVICE, LABELS).fill(email, links)
    assert (mail.subject, mail.html, mail.text) == _reference(digest, email, links)


# --- byte for byte, for anything build_message takes ------------------------------------------

LETTERS = list("abcAZ09") + list("æøåÆØÅéüß") + ["Jürgen", "Ødegård", "Kari", "Ola"]
name_chars = st.sampled_from([*LETTERS, " ", "  ", ",", '"', ".", "'", "-", "(", ")", "\\", "ł"])
names = st.one_of(
    st.lists(name_chars, max_size=12).map("".join),
    st.lists(st.sampled_from(["Kari", "Ødegård", "Åse", "Ola", "Nordmann"]), max_size=4).map(
        " ".join
    ),
    st.text(max_size=30),
    st.sampled_from(["x" * 300, "Ø" * 250, "Kari " * 60]),
)
locals_ = st.one_of(
    st.sampled_from(["kari", "ola.nordmann", "a+b", "æøå", "kari.ødegård", "o'brien", "a..b"]),
    st.text(st.sampled_from(list("ab.æ,;()[]+!#=?")), min_size=1, max_size=8),
)
domains = st.sampled_from(
    ["kommune.no", "bærum.kommune.no", "xn--brum-roa.kommune.no", "[127.0.0.1]", "a", "-x.no"]
)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", locals_, domains)
subjects = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["Veiledervarsel: 1 ny artikkel, 1 kunngjøring", "Ø" * 600, "a " * 600]),
)
lines = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["x" * 1100, "æ" * 500, "\r\n", "\r", "--===============1==", " "]),
)
bodies = st.lists(
    st.one_of(lines, st.sampled_from([EMAIL_SLOT, MANAGE_SLOT, UNSUBSCRIBE_SLOT])), max_size=8
).map("\n".join)
dates = st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, OSLO, timezone(timedelta(seconds=3601))])),
    st.datetimes(),
)
message_ids = st.one_of(
    st.sampled_from(["digest-run1-sub3@veiledervarsel.no", "a@b", "x" * 995 + "@b.no"]),
    st.text(max_size=20),
)
urls = st.one_of(
    st.sampled_from(["https://v.no/avmelding/abc-DEF_1", "https://v.no/a b", "x" * 1000]),
    st.text(max_size=20),
)
link_values = st.one_of(st.sampled_from(["https://v.no/innstillinger/x", "x" * 1000]), awkward)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    from_name=names,
    from_address=addresses,
    to_name=names,
    to_address=addresses,
    subject=subjects,
    text=bodies,
    html=bodies,
    email=st.one_of(addresses, awkward),
    manage=link_values,
    unsubscribe=urls,
    message_id=message_ids,
    list_id=st.one_of(st.just("Veiledervarsel <digest.veiledervarsel.no>"), st.text(max_size=20)),
    date=dates,
)
def test_digest_wire_is_byte_for_byte_what_build_message_makes(
    from_name: str,
    from_address: str,
    to_name: str,
    to_address: str,
    subject: str,
    text: str,
    html: str,
    email: str,
    manage: str,
    unsubscribe: str,
    message_id: str,
    list_id: str,
    date: datetime,
) -> None:
    env = Envelope(
        from_address,
        from_name,
        to_address,
        to_name,
        message_id,
        list_id,
        unsubscribe,
        date,
    )
    assert_same_wire(MailTemplate(subject, html, text), env, MailLinks(unsubscribe, manage), email)


def _wire(**changes: str) -> Envelope:
    return replace(envelope(), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({"from_address": "varsel@veiledervarsel.no\r\nBcc: x@evil.example"}, "From"),
        ({"to_address": "kari@kommune.no\nBcc: x@evil.example"}, "To"),
        ({"to_address": "kari@kommune\u202e.no"}, "To"),
        ({"to_address": "=?utf-8?q?x?=@kommune.no"}, "To"),
        ({"to_address": "kari kari@kommune.no"}, "To"),
        ({"to_address": "kari@ko mmune.no"}, "To"),
        ({"to_address": "kommune.no"}, "To"),
        ({"message_id": "a@b\r\nBcc: x@evil.example"}, "Message-ID"),
        ({"list_id": "Varsel\x07 <digest.x.no>"}, "List-Id"),
        ({"unsubscribe_url": "https://v.no/=?utf-8?q?x?="}, "List-Unsubscribe"),
    ],
)
def test_digest_wire_refuses_what_build_message_refuses(
    changes: dict[str, str], header: str
) -> None:
    template = digest_template(sample_digest(), OSLO, SERVICE, LABELS)
    env = _wire(**changes)
    with pytest.raises(MessageError) as refused:
        digest_wire(template, env, LINKS, "kari@kommune.no")
    assert refused.value.header == header
    assert_same_wire(template, env, LINKS, "kari@kommune.no")


@pytest.mark.parametrize(
    "subject",
    ["Varsel\r\nBcc: x@evil.example", "Varsel\u200f", "=?utf-8?q?Varsel?="],
)
def test_digest_wire_refuses_an_unsafe_subject(subject: str) -> None:
    template = MailTemplate(subject, "<p>x</p>", "x")
    with pytest.raises(MessageError) as refused:
        digest_wire(template, envelope(), LINKS, "kari@kommune.no")
    assert refused.value.header == "Subject"


def test_a_non_ascii_local_part_travels_as_utf8() -> None:
    template = digest_template(sample_digest(), OSLO, SERVICE, LABELS)
    wire = digest_wire(template, envelope("æøå@kommune.no"), LINKS, "æøå@kommune.no")
    assert wire.smtputf8 and wire.recipients == ("æøå@kommune.no",)
    assert "To: Kari Ødegård <æøå@kommune.no>\r\n".encode() in wire.data
    assert_same_wire(template, envelope("æøå@kommune.no"), LINKS, "æøå@kommune.no")


def test_an_idn_domain_goes_out_as_a_labels() -> None:
    template = digest_template(sample_digest(), OSLO, SERVICE, LABELS)
    wire = digest_wire(template, envelope("kari@bærum.no"), LINKS, "kari@bærum.no")
    assert wire.recipients == ("kari@xn--brum-voa.no",) and not wire.smtputf8
    assert b"To: Kari =?utf-8?b?w5hkZWfDpXJk?= <kari@xn--brum-voa.no>\r\n" in wire.data


words = st.one_of(
    st.sampled_from(["Kari", "Ødegård", "Åse", "O'Brien", "Jean-Luc", "ÆØÅ", "x", "Łukasz"]),
    st.text(st.sampled_from(list("aZ9'-_!#=?{}|~`$%&*+/^æøåÅßüé日本")), min_size=1, max_size=6),
)


@settings(max_examples=1000, deadline=None)
@given(
    name=st.lists(words, max_size=6).map(" ".join),
    local=st.sampled_from(["kari", "ola.nordmann", "æøå", "kari.ødegård"]),
)
def test_names_of_plain_words_are_encoded_as_the_email_package_encodes_them(
    name: str, local: str
) -> None:
    """The words a fast path writes itself (with æøå: one encoded word from the first such
    word to the last), the heart of the byte-for-byte property above."""
    env = replace(envelope(f"{local}@kommune.no"), to_name=name)
    template = MailTemplate("Varsel", "<p>x</p>", "x")
    assert_same_wire(template, env, LINKS, "kari@kommune.no")
