"""A message as it goes on the wire: envelope sender, recipients and the bytes, which is
all a transport needs (made once per mail, whatever built it)."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

# Python's header folder leaves a doubled space before a folded encoded word
# ("1  kunngjøring"); folding only past the RFC 5322 hard limit avoids that.
MAIL_POLICY = policy.default.clone(max_line_length=998)
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
