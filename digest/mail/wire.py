"""A message as it goes on the wire: envelope sender, recipients and the bytes, which is
all a transport needs (made once per mail, whatever built it)."""

from __future__ import annotations

import importlib
import random
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from digest.mail.headers import (
    MAIL_POLICY,
    Envelope,
    build_message,
    mail_address,
    refuse_unsafe,
)
from digest.mail.render import (
    EMAIL_SLOT,
    MANAGE_SLOT,
    UNSUBSCRIBE_SLOT,
    MailLinks,
    MailTemplate,
    slot_values,
)

WIRE_POLICY = MAIL_POLICY.clone(linesep="\r\n")
UTF8_WIRE_POLICY = WIRE_POLICY.clone(utf8=True)


@dataclass(frozen=True, slots=True)
class Wire:
    """One mail to send: `data` with CRLF line ends; `smtputf8` when an address is not
    ASCII (the relay must then offer SMTPUTF8, and the headers travel as UTF-8)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    smtputf8: bool


def smtp_addresses(message: EmailMessage) -> tuple[str, list[str], bool]:
    """Sender, recipients, and whether they need SMTPUTF8 (a non-ASCII local part)."""
    sender = message["From"].addresses[0].addr_spec
    recipients = [a.addr_spec for a in message["To"].addresses]
    return sender, recipients, not all(a.isascii() for a in (sender, *recipients))


def wire_bytes(message: EmailMessage, utf8: bool) -> bytes:
    # Flattened here: send_message would re-fold headers with its own policy. With
    # SMTPUTF8 the headers travel as UTF-8, which a non-ASCII address needs.
    return message.as_bytes(policy=UTF8_WIRE_POLICY if utf8 else WIRE_POLICY)


def wire_of(message: EmailMessage) -> Wire:
    """A built message as it goes out (notices, tests; digests are made faster)."""
    sender, recipients, utf8 = smtp_addresses(message)
    return Wire(sender, tuple(recipients), wire_bytes(message, utf8), utf8)


# --- digests: many mails of one template, without an EmailMessage each -----------------------

# The email package's own encoded-word encoder (it has no public name): the words of a name
# are encoded exactly as build_message's headers encode them.
_ew: Any = importlib.import_module("email._encoded_words")

# Longer lines are folded (headers) or make the email package encode a part.
LIMIT: int = MAIL_POLICY.max_line_length or 998
_CRLF = b"\r\n"
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_ASCII_WORD = re.compile(f"[{_ATEXT}]+")
_DOT_ATOM = re.compile(f"[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*")
_HOST = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_URL = re.compile(r"[!-~]+")
_SLOT = re.compile(f"({EMAIL_SLOT}|{MANAGE_SLOT}|{UNSUBSCRIBE_SLOT})".encode())
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))


def digest_wire(template: MailTemplate, envelope: Envelope, links: MailLinks, email: str) -> Wire:
    """The mail `build_message(template.fill(email, links), envelope)` would put on the wire,
    byte for byte (but its MIME boundary, random as the email package's), made from the
    template's body bytes and headers kept for all its readers; refused as build_message
    refuses, with MessageError.

    What a fast path here cannot write as the email package would (a name with quotes or
    commas, a line too long, a link with a line break ...) is made by the email package.
    """
    sender = _checked_sender(envelope.from_name, envelope.from_address)
    to = mail_address("To", envelope.to_name, envelope.to_address)
    refuse_unsafe("Subject", template.subject)
    refuse_unsafe("Message-ID", envelope.message_id)
    refuse_unsafe("List-Id", envelope.list_id)
    refuse_unsafe("List-Unsubscribe", envelope.unsubscribe_url)
    body = _bodies(template).filled(email, links)
    if body is None:
        return wire_of(build_message(template.fill(email, links), envelope))
    text, html = body
    sender_spec, to_spec = sender.addr_spec, to.addr_spec
    utf8 = not (sender_spec.isascii() and to_spec.isascii())
    boundary = _boundary(text, html)
    data = b"".join(
        (
            _folded_sender(envelope.from_name, envelope.from_address, utf8),
            _to_header(to, utf8),
            _folded_text("Subject", template.subject, utf8),
            _date_header(envelope.date, utf8),
            _message_id_header(envelope.message_id, utf8),
            _folded_text("List-Id", envelope.list_id, utf8),
            _unsubscribe_header(envelope.unsubscribe_url, utf8),
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b"Auto-Submitted: auto-generated\r\n"
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/alternative; boundary="',
            boundary,
            b'"\r\n\r\n--',
            boundary,
            b'\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: ',
            b"7bit" if text.isascii() else b"8bit",
            b"\r\n\r\n",
            text,
            b"\r\n--",
            boundary,
            b'\r\nContent-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: ',
            b"7bit" if html.isascii() else b"8bit",
            # The part add_alternative makes says its MIME version again.
            b"\r\nMIME-Version: 1.0\r\n\r\n",
            html,
            b"\r\n--",
            boundary,
            b"--\r\n",
        )
    )
    return Wire(sender_spec, (to_spec,), data, utf8)


@dataclass(frozen=True, slots=True)
class _Body:
    """One part's body as the email package writes it (7bit or 8bit: CRLF line ends, one
    at the end), cut at the slots: `pieces` alternate text and slot names."""

    pieces: tuple[bytes, ...]
    longest: int  # the longest line without a slot
    slot_lines: tuple[tuple[int, tuple[bytes, ...]], ...]  # (the rest's length, its slots)

    @classmethod
    def of(cls, text: str) -> _Body:
        data = text.encode().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # As the email package's set_content: one line end at the end, CRLF on the wire.
        data = (data if data.endswith(b"\n") else data + b"\n").replace(b"\n", _CRLF)
        longest, slot_lines = 0, []
        for line in data.split(_CRLF)[:-1]:
            slots = tuple(_SLOT.findall(line))
            rest = len(line) - sum(len(s) for s in slots)
            if slots:
                slot_lines.append((rest, slots))
            else:
                longest = max(longest, rest)
        return cls(tuple(_SLOT.split(data)), longest, tuple(slot_lines))

    def filled(self, values: dict[bytes, bytes]) -> bytes | None:
        """The body with `values` in its slots, or None if a line would then be longer
        than the email package writes unencoded."""
        if self.longest > LIMIT or any(
            rest + sum(len(values[s]) for s in slots) > LIMIT for rest, slots in self.slot_lines
        ):
            return None
        pieces = list(self.pieces)
        pieces[1::2] = [values[s] for s in self.pieces[1::2]]
        return b"".join(pieces)


@dataclass(frozen=True, slots=True)
class _Bodies:
    text: _Body
    html: _Body

    def filled(self, email: str, links: MailLinks) -> tuple[bytes, bytes] | None:
        """Both parts for one reader, or None when only the email package can make them:
        a value with a line break, or blanks the text part's strip would cut."""
        text_values, html_values = slot_values(email, links)
        if any(not v or v != v.strip() or "\r" in v or "\n" in v for v in text_values.values()):
            return None
        text = self.text.filled({k.encode(): v.encode() for k, v in text_values.items()})
        html = self.html.filled({k.encode(): v.encode() for k, v in html_values.items()})
        return None if text is None or html is None else (text, html)


@lru_cache(maxsize=256)
def _bodies(template: MailTemplate) -> _Bodies:
    # The text as fill writes it: stripped, one line end.
    return _Bodies(_Body.of(template.text.strip() + "\n"), _Body.of(template.html))


def _boundary(*parts: bytes) -> bytes:
    """A boundary as the email package makes one: random, and in none of the parts."""
    while True:
        token = random.randrange(sys.maxsize)
        boundary = f"==============={token:0{_BOUNDARY_WIDTH}d}==".encode()
        if not any(b"--" + boundary in part for part in parts):
            return boundary


@lru_cache(maxsize=64)
def _checked_sender(name: str, address: str) -> Address:
    return mail_address("From", name, address)


@lru_cache(maxsize=64)
def _folded_sender(name: str, address: str, utf8: bool) -> bytes:
    return _fold("From", _checked_sender(name, address), utf8)


def _fold(field: str, value: str | Address, utf8: bool) -> bytes:
    """A header as the email package writes it."""
    policy = UTF8_WIRE_POLICY if utf8 else WIRE_POLICY
    return policy.fold_binary(field, policy.header_factory(field, value))


@lru_cache(maxsize=256)
def _folded_text(field: str, value: str, utf8: bool) -> bytes:
    """A header all mails of a run share (Subject, List-Id), written once."""
    return _fold(field, value, utf8)


def _to_header(to: Address, utf8: bool) -> bytes:
    """The To header: a name of plain words is written here, encoding the words with æøå
    as the email package does (from the first to the last such word, one encoded word);
    any other is written by the email package."""
    name, local, domain = to.display_name, to.username, to.domain
    words = name.split(" ") if name else []
    plain = [bool(_ASCII_WORD.fullmatch(w)) for w in words]
    if not (
        (_DOT_ATOM.fullmatch(local) or (utf8 and _utf8_local(local)))
        and _HOST.fullmatch(domain)
        and all(p or _non_ascii_word(w) for p, w in zip(plain, words, strict=True))
    ):
        return _fold("To", to, utf8)
    if not name:
        line = f"To: {local}@{domain}"
    elif utf8 or all(plain):
        line = f"To: {name} <{local}@{domain}>"
    else:
        first = plain.index(False)
        last = len(plain) - plain[::-1].index(False)
        encoded = _ew.encode(" ".join(words[first:last]), charset="utf-8")
        line = "To: " + " ".join([*words[:first], encoded, *words[last:]]) + f" <{local}@{domain}>"
    data = line.encode()
    return data + _CRLF if len(data) <= LIMIT else _fold("To", to, utf8)


def _non_ascii_word(word: str) -> bool:
    return not word.isascii() and _word(word)


def _word(word: str) -> bool:
    """Letters and atext only: nothing the address parser would quote or split."""
    return bool(word) and all(
        c.isalpha() if not c.isascii() else bool(_ASCII_WORD.fullmatch(c)) for c in word
    )


def _utf8_local(local: str) -> bool:
    return all(_word(part) for part in local.split("."))


def _date_header(date: datetime, utf8: bool) -> bytes:
    offset = date.utcoffset()
    if offset is None or offset % timedelta(minutes=1) or date.year < 1000:
        return _fold("Date", format_datetime(date), utf8)
    return f"Date: {format_datetime(date)}\r\n".encode()


def _message_id_header(message_id: str, utf8: bool) -> bytes:
    if len(message_id) > 900 or not _MESSAGE_ID.fullmatch(message_id):
        return _fold("Message-ID", f"<{message_id}>", utf8)
    return f"Message-ID: <{message_id}>\r\n".encode()


def _unsubscribe_header(url: str, utf8: bool) -> bytes:
    if len(url) > 900 or not _URL.fullmatch(url):
        return _fold("List-Unsubscribe", f"<{url}>", utf8)
    return f"List-Unsubscribe: <{url}>\r\n".encode()
