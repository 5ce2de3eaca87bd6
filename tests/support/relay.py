"""An SMTP relay (aiosmtpd, in a thread of the test process) that a fault test makes
misbehave: refuse every MAIL or RCPT for a while (421, 451), refuse chosen recipients for
good (550), accept the connection and then say nothing (before or after DATA), and recover.
It logs every message it accepted: its Message-ID and recipient.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.smtp import free_port

# Where a fault strikes: at MAIL FROM, at RCPT TO, or after the message's data (before the
# reply that would say the relay took it).
MAIL, RCPT, DATA = "MAIL", "RCPT", "DATA"


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message the relay took: it has it, whether or not the client heard so."""

    message_id: str  # without angle brackets
    recipient: str
    at: float  # time.monotonic()


@dataclass(frozen=True, slots=True)
class Fault:
    at: str  # MAIL, RCPT or DATA
    reply: str | None  # None: say nothing until the fault ends (or the client leaves)
    until: float  # time.monotonic()


def _message_id(content: bytes) -> str:
    headers = BytesHeaderParser().parsebytes(content)
    return str(headers.get("Message-ID", "")).strip().strip("<>")


class Relay:
    """The handler and its controller. `delay` holds each DATA reply that long, so that a
    few messages are always in flight when a test kills something."""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        self.delay = delay
        self.refuse: dict[str, str] = {}  # recipient -> permanent reply, e.g. "550 5.1.1 ..."
        self.accepted: list[Accepted] = []
        self.hung: list[Accepted] = []  # taken after DATA, then never answered
        self.replies: Counter[str] = Counter()  # the fault replies given, by command
        self._fault: Fault | None = None
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> Relay:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.recover()
        self.controller.stop()

    def fail(self, at: str, reply: str | None, seconds: float = math.inf) -> None:
        """From now, answer `reply` at `at` (or hang there when `reply` is None) for
        `seconds`, or until `recover`."""
        self._fault = Fault(at, reply, time.monotonic() + seconds)

    def recover(self) -> None:
        self._fault = None

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def log(self) -> list[Accepted]:
        with self._lock:
            return list(self.accepted)

    def _fault_at(self, at: str) -> Fault | None:
        fault = self._fault
        if fault is None or fault.at != at or time.monotonic() >= fault.until:
            return None
        return fault

    async def _misbehave(self, at: str, server: SMTP) -> str | None:
        """The fault's reply at `at`, after hanging for as long as the fault says; None
        when there is no fault (any more) and the command goes on as usual."""
        fault = self._fault_at(at)
        if fault is None:
            return None
        self.replies[f"{at} {fault.reply or 'hang'}"] += 1
        if fault.reply is None:
            # Cancelled when the client gives up and closes the connection.
            while self._fault_at(at) is fault:
                await asyncio.sleep(0.05)
            return None
        if fault.reply.startswith("421") and server.transport is not None:
            # 421 closes the connection (RFC 5321 3.8), once the reply is written.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return fault.reply

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        refusal = await self._misbehave(MAIL, server)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = await self._misbehave(RCPT, server) or self.refuse.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)  # not decoded: the controller's default
        message_id = _message_id(envelope.content)
        taken = [Accepted(message_id, rcpt, time.monotonic()) for rcpt in envelope.rcpt_tos]
        fault = self._fault_at(DATA)
        if fault is not None and fault.reply is not None:
            refusal = await self._misbehave(DATA, server)
            if refusal is not None:
                return refusal
            fault = None  # over in the meantime
        # The relay has the message from here on: a client that never hears the reply
        # (killed, timed out) has a message in flight, and may send it again.
        with self._lock:
            self.accepted.extend(taken)
            if fault is not None:
                self.hung.extend(taken)
        if fault is not None:
            await self._misbehave(DATA, server)
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 Message accepted"
