"""Building messages and sending them: over SMTP, one connection per batch, or to a Maildir."""

from __future__ import annotations

import mailbox
import ssl
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from digest.render import RenderedMail

# Python's header folder leaves a doubled space before a folded encoded word
# ("1  kunngjøring"); folding only past the RFC 5322 hard limit avoids that.
MAIL_POLICY = policy.default.clone(max_line_length=998)
WIRE_POLICY = MAIL_POLICY.clone(linesep="\r\n")


class SendError(Exception):
    """A message was not accepted; `permanent` says whether trying again can help, and
    `recipient` whether it was the recipient's address that was refused (a bounce) rather
    than the server or the connection failing."""

    def __init__(self, reason: str, permanent: bool, recipient: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.recipient = recipient


@dataclass(frozen=True, slots=True)
class Envelope:
    from_address: str
    from_name: str
    to_address: str
    to_name: str
    message_id: str  # without angle brackets
    list_id: str
    unsubscribe_url: str
    date: datetime


def _address(name: str, address: str) -> Address:
    local, domain = address.rsplit("@", 1)
    return Address(display_name=name, username=local, domain=domain)


def build_message(mail: RenderedMail, envelope: Envelope) -> EmailMessage:
    """A multipart/alternative message; the email package encodes æøå in headers."""
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = _address(envelope.from_name, envelope.from_address)
    message["To"] = _address(envelope.to_name, envelope.to_address)
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(envelope.date)
    message["Message-ID"] = f"<{envelope.message_id}>"
    message["List-Id"] = envelope.list_id
    # RFC 8058 one-click unsubscribe.
    message["List-Unsubscribe"] = f"<{envelope.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text, subtype="plain", charset="utf-8")
    message.add_alternative(mail.html, subtype="html", charset="utf-8")
    return message


class Transport(Protocol):
    async def open(self) -> None: ...
    async def send(self, message: EmailMessage) -> None: ...
    async def close(self) -> None: ...


class OutboxTransport:
    """Writes each message to a Maildir folder: the embedded default when no SMTP is set."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    async def send(self, message: EmailMessage) -> None:
        mailbox.Maildir(self.path, create=True).add(message.as_bytes())

    async def close(self) -> None:
        return None


class SMTPTransport:
    """One connection reused for a batch of messages, opened on first use and reopened if lost."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        self.implicit_tls = parts.scheme == "smtps"
        self.starttls = query.get("starttls") in ("true", "1", "yes")
        self.hostname = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 587 if self.starttls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self._client: aiosmtplib.SMTP | None = None

    async def open(self) -> None:
        client = aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            use_tls=self.implicit_tls,
            start_tls=self.starttls if self.starttls else False,
            username=self.username,
            password=self.password,
            timeout=self.timeout,
            tls_context=ssl.create_default_context()
            if (self.implicit_tls or self.starttls)
            else None,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendError(
                f"cannot connect to {self.hostname}:{self.port}: {exc}", False
            ) from None
        self._client = client

    async def send(self, message: EmailMessage) -> None:
        if self._client is None or not self._client.is_connected:
            await self.open()
        assert self._client is not None
        sender = message["From"].addresses[0].addr_spec
        recipients = [a.addr_spec for a in message["To"].addresses]
        try:
            # Flattened here: send_message would re-fold headers with its own policy.
            await self._client.sendmail(sender, recipients, message.as_bytes(policy=WIRE_POLICY))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise SendError(
                f"recipient refused: {exc.recipients}",
                permanent=all(500 <= c < 600 for c in codes),
                recipient=True,
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._client = None
            raise SendError(str(exc) or type(exc).__name__, permanent=False) from None

    async def close(self) -> None:
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self._client.close()
        self._client = None


def make_transport(smtp_url: str, outbox: Path) -> Transport:
    return SMTPTransport(smtp_url) if smtp_url else OutboxTransport(outbox)
