"""Building messages and sending them: over SMTP on a connection kept open across mails,
or to a Maildir; what each SMTP failure means (the recipient's, or the relay's)."""

from __future__ import annotations

import contextlib
import mailbox
import re
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from digest.core.errors import DigestError
from digest.mail.headers import Envelope as Envelope
from digest.mail.headers import MessageError as MessageError
from digest.mail.headers import build_message as build_message
from digest.mail.wire import Wire, wire_of


class SendError(DigestError):
    """A message was not accepted; `permanent` says whether trying again can help,
    `recipient` whether it was the recipient's address that was refused (a bounce) rather
    than the server or the connection failing, `relay` whether the relay or the connection
    failed for everyone (never the recipient's fault, never permanent), and `code` the SMTP
    reply code, if any."""

    def __init__(
        self,
        reason: str,
        permanent: bool,
        recipient: bool = False,
        code: int | None = None,
        relay: bool = False,
    ) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.recipient = recipient
        self.code = code
        self.relay = relay


class Transport(Protocol):
    async def open(self) -> None: ...
    async def send_wire(self, wire: Wire) -> None: ...
    async def send(self, message: EmailMessage) -> None: ...  # send_wire(wire_of(message))
    def reset(self) -> None: ...  # drop a connection left in an unknown state
    async def close(self) -> None: ...


class OutboxTransport:
    """Writes each message to a Maildir folder: the embedded default when no SMTP is set."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._opened = False

    async def open(self) -> None:
        # Maildir(create=True) makes tmp/, new/ and cur/ only when it makes the folder
        # itself: a folder that is there already (made by us, or by an operator) gets them
        # here, or every message would fail to be written.
        for part in ("tmp", "new", "cur"):
            (self.path / part).mkdir(parents=True, exist_ok=True)
        self._opened = True

    async def send_wire(self, wire: Wire) -> None:
        try:
            if not self._opened:
                await self.open()
            # Maildir files end their lines as the system does (LF), as readers expect.
            mailbox.Maildir(self.path).add(wire.data.replace(b"\r\n", b"\n"))
        except OSError as exc:  # a full disk or a lost folder fails every mail alike
            self._opened = False  # the folder is made again for the next one
            raise SendError(
                f"cannot write to the outbox {self.path}: {exc}", False, relay=True
            ) from None

    async def send(self, message: EmailMessage) -> None:
        await self.send_wire(wire_of(message))

    def reset(self) -> None:
        return None

    async def close(self) -> None:
        return None


# A 421 at any step: the relay is closing the connection (shutting down, or too busy).
SERVICE_UNAVAILABLE = 421


class SMTPTransport:
    """One connection reused for message after message, opened on first use and reopened
    if lost; every failure comes out as a SendError saying whose it was."""

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

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

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
            client.close()
            raise SendError(
                f"cannot connect to {self.hostname}:{self.port}: {exc or type(exc).__name__}",
                permanent=False,
                code=exc.code if isinstance(exc, aiosmtplib.SMTPResponseException) else None,
                relay=True,
            ) from None
        self._client = client

    async def send_wire(self, wire: Wire) -> None:
        """Send one mail; with several recipients, it is sent if any is accepted."""
        if not self.connected:
            await self.open()
        assert self._client is not None
        try:
            await self._client.sendmail(
                wire.sender,
                wire.recipients,
                wire.data,
                mail_options=["SMTPUTF8"] if wire.smtputf8 else [],
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise self._refused(exc) from None
        except aiosmtplib.SMTPNotSupported as exc:
            # Nothing was sent; the connection is still good for the next message.
            raise SendError(
                f"a non-ASCII address ({', '.join([wire.sender, *wire.recipients])}) needs "
                f"SMTPUTF8, which the relay {self.hostname} does not offer ({exc})",
                permanent=True,
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            # MAIL FROM or DATA refused, a 5xx as much as a 4xx: the same sender and the
            # same kind of message go through tomorrow, so it is the relay's trouble, and
            # the mail is tried again. aiosmtplib has sent RSET (or closed after a 421).
            raise SendError(f"{exc.code} {exc.message}", False, code=exc.code, relay=True) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # A timeout or a lost connection: the transaction's state is unknown.
            self.reset()
            raise SendError(str(exc) or type(exc).__name__, False, relay=True) from None
        except ValueError as exc:
            # An address aiosmtplib will not put on the wire (checked before sending).
            self.reset()
            raise SendError(f"cannot send to this address: {exc}", permanent=True) from None
        except BaseException:
            self.reset()  # cancelled mid-transaction: the connection cannot be trusted
            raise

    def _refused(self, exc: aiosmtplib.SMTPRecipientsRefused) -> SendError:
        error = _refused(exc)
        if error.relay:
            # Over a limit of this connection's, or its relay going away: a new one for
            # the next mail, not the same refusal for every mail after this one.
            self.reset()
        return error

    async def send(self, message: EmailMessage) -> None:
        await self.send_wire(wire_of(message))

    def reset(self) -> None:
        """Drop the connection, in whatever state it is; the next message opens a new one."""
        if self._client is not None:
            self._client.close()
        self._client = None

    async def close(self) -> None:
        """Say QUIT and close; a relay that does not answer is simply dropped."""
        if self.connected:
            assert self._client is not None
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await self._client.quit()
        self.reset()


def _refused(exc: aiosmtplib.SMTPRecipientsRefused) -> SendError:
    """Every recipient refused at RCPT: a 5xx about the mailbox is a bounce, any other
    refusal a deferral for the recipient; a 421, or the relay out of storage or over its
    recipient limit, is the relay's trouble, whoever the recipient."""
    refusals = [(r.code, r.message) for r in exc.recipients]
    code = refusals[0][0] if refusals else None
    reason = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
    if any(_relays_refusal(c, message) for c, message in refusals):
        return SendError(reason, False, code=code, relay=True)
    permanent = bool(refusals) and all(_bounce(c, message) for c, message in refusals)
    return SendError(f"recipient refused: {reason}", permanent, recipient=True, code=code)


# 452 at RCPT is "insufficient system storage" or "too many recipients" (RFC 5321
# 4.5.3.1.10, which asks that an old relay's 552 for the latter be taken as a 452): the
# relay's, unless the enhanced code (RFC 3463) says it is this mailbox (X.2.X) that is full.
_STORAGE_CODES = (452, 552)
_MAILBOX_STATUS = re.compile(r"[45]\.2\.\d{1,3}(?:\s|$)")


# A 5xx at RCPT about policy (X.7.X: relaying denied, authentication needed) or about our
# sender (X.1.7, X.1.8: Postfix says its sender restrictions at RCPT) is a refusal the relay
# may give everyone: not a bounce that suppresses at once, but a refusal of the recipient
# that delivery takes as the relay's when nobody is accepted after it.
_NOT_THE_MAILBOX = re.compile(r"5\.(?:7\.\d{1,3}|1\.[78])(?:\s|$)")


def _bounce(code: int, message: str) -> bool:
    """A refusal at RCPT that trying again cannot mend: a 5xx about the mailbox. (RFC
    5321 4.5.3.1.10: a 552 there is taken as temporary; a full mailbox clears.)"""
    return 500 <= code < 600 and code != 552 and not _NOT_THE_MAILBOX.match(message)


def _relays_refusal(code: int, message: str) -> bool:
    if code == SERVICE_UNAVAILABLE:
        return True
    return code in _STORAGE_CODES and not _MAILBOX_STATUS.match(message)


def make_transport(smtp_url: str, outbox: Path, timeout: float = 30.0) -> Transport:
    return SMTPTransport(smtp_url, timeout) if smtp_url else OutboxTransport(outbox)
