"""Header values we write: each must be one safe line that our own code cleaned; names,
addresses and the envelope of a mail, and the email package's message built from them
(notices, and the digests its fast path in `wire` cannot write)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from email_validator import EmailNotValidError, validate_email

from digest.core.errors import DigestError
from digest.mail.render import RenderedMail
from subscribers.text import clean_line, is_safe_line

# Python's header folder leaves a doubled space before a folded encoded word
# ("1  kunngjøring"); folding only past the RFC 5322 hard limit avoids that.
MAIL_POLICY = policy.default.clone(max_line_length=998)


class MessageError(DigestError):
    """A message we refuse to build: a header value that is not one safe line, or an
    address that cannot be written in a header or an SMTP envelope; `header` names the
    header (From, To, Subject ...) whose value was refused."""

    def __init__(self, header: str, reason: str) -> None:
        super().__init__(f"{header} refused: {reason}")
        self.header = header


# Names are stored with at most this many characters.
NAME_LIMIT = 200
_ASCII_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


def header_text(text: str, limit: int | None = NAME_LIMIT) -> str:
    """`text` (a name) reduced to one safe line for a header, by our own code.

    clean_line decodes encoded words (dropping those it cannot read) and removes
    line-break, control and bidi characters; a «=?» still left is broken up, since
    `build_message` refuses anything that looks like an encoded word.
    """
    cleaned = clean_line(text).replace("=?", "= ?")
    return cleaned[:limit].rstrip() if limit is not None else cleaned


def refuse_unsafe(field: str, value: str) -> str:
    """`value` if it is one safe line for the `field` header, else MessageError."""
    if "\r" in value or "\n" in value:
        raise MessageError(field, "it contains a line break")
    if not is_safe_line(value):
        raise MessageError(field, "it contains a control or invisible character")
    if "=?" in value:
        raise MessageError(field, "it contains an encoded word")
    return value


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a message is from and to, and its list headers; the names are cleaned here,
    so whoever makes an Envelope hands the email package only safe text."""

    from_address: str
    from_name: str
    to_address: str
    to_name: str
    message_id: str  # without angle brackets
    list_id: str
    unsubscribe_url: str
    date: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "from_name", header_text(self.from_name))
        object.__setattr__(self, "to_name", header_text(self.to_name))


def ascii_domain(field: str, domain: str) -> str:
    """The domain as it goes out: IDNA-encoded (A-labels), in the envelope and headers."""
    if domain.isascii():
        if not _ASCII_DOMAIN.fullmatch(domain):
            raise MessageError(field, f"{domain!r} is not a mail domain")
        return domain
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).ascii_domain
    except EmailNotValidError as exc:
        raise MessageError(field, f"cannot IDNA-encode {domain!r}: {exc}") from None


def mail_address(field: str, name: str, address: str) -> Address:
    refuse_unsafe(field, name)
    refuse_unsafe(field, address)
    local, _, domain = address.rpartition("@")
    if not local or any(c.isspace() or c in '<>"\\' for c in local):
        raise MessageError(field, f"{address!r} is not a mail address")
    try:
        return Address(display_name=name, username=local, domain=ascii_domain(field, domain))
    except ValueError as exc:
        raise MessageError(field, f"{address!r}: {exc}") from None


def build_message(mail: RenderedMail, envelope: Envelope) -> EmailMessage:
    """A multipart/alternative message; the email package encodes æøå in headers.

    Every header value must already be one safe line (see `header_text`); any other,
    wherever it came from, is refused with MessageError rather than passed on.
    """
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = mail_address("From", envelope.from_name, envelope.from_address)
    message["To"] = mail_address("To", envelope.to_name, envelope.to_address)
    message["Subject"] = refuse_unsafe("Subject", mail.subject)
    message["Date"] = format_datetime(envelope.date)
    message["Message-ID"] = f"<{refuse_unsafe('Message-ID', envelope.message_id)}>"
    message["List-Id"] = refuse_unsafe("List-Id", envelope.list_id)
    # RFC 8058 one-click unsubscribe.
    unsubscribe = refuse_unsafe("List-Unsubscribe", envelope.unsubscribe_url)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text, subtype="plain", charset="utf-8")
    message.add_alternative(mail.html, subtype="html", charset="utf-8")
    return message
