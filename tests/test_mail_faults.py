"""Outbound mail under attack and under faults, through a real relay (aiosmtpd).

Hostile names in headers, non-ASCII addresses with and without SMTPUTF8, a mail that
cannot be composed, a relay that refuses everyone for a while, and workers lost between
claim and send: each mail fails or waits on its own, the rest go out, every run ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from digest.core.db import session_scope
from digest.core.models import Change, Delivery, DigestRun, MailStatus, Notice
from digest.core.settings import Settings
from digest.delivery import runs
from digest.delivery.claims import STALE_CLAIM, claim
from digest.delivery.notices import lost_notices, queue_notice
from subscribers.choices import choices
from subscribers.models import Status, Subscriber
from subscribers.signups import add_subscriber
from tests.support import command
from tests.support.mailroom import deliver_chunk, send_notices
from tests.support.smtp import free_port
from tests.test_runs import RUN_AT, backoff_over, seed, start, statuses

# What the attacker typed as a name, and a variant whose second word our decoder
# cannot read (an unknown charset), which the email package decodes all the same.
INJECTIONS = [
    "=?utf-8?q?Kari=0D=0AReply-To:_x@evil.example=0D=0ASubject:_Vinn_en_iPhone?=",
    "=?utf-8?q?Kari=0D=0AReply-To:_x@evil.example?= =?bogus?q?z?=",
]
# Exactly the header fields we set, and those the email package adds for the body.
OUR_HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
}


class RelayInbox:
    """What a relay received, parsed as UTF-8 (SMTPUTF8 headers are raw UTF-8)."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: dict[str, str] = {}  # address -> reply at RCPT
        self.refuse_all: str | None = None  # a reply at RCPT for everyone
        # A rate limit: this many recipients are accepted, then everyone gets `over_limit`.
        self.limit: int | None = None
        self.over_limit = "451 4.7.0 Rate limit exceeded, try again later"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse_all or self.refuse.get(address)
        if not reply and self.limit is not None:
            if self.limit <= 0:
                reply = self.over_limit
            self.limit -= 1
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.raw.append(envelope.original_content or envelope.content)
        return "250 Message accepted"

    @property
    def messages(self) -> list[EmailMessage]:
        return [message_from_string(raw.decode(), policy=policy.SMTPUTF8) for raw in self.raw]

    def recipients(self) -> list[str]:
        return sorted(r for _sender, rcpts in self.envelopes for r in rcpts)


class Relay:
    def __init__(self, smtputf8: bool) -> None:
        self.inbox = RelayInbox()
        self.port = free_port()
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=smtputf8
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture(params=[True, False], ids=["smtputf8", "ascii-only"])
def relay(request: pytest.FixtureRequest) -> Iterator[Relay]:
    server = Relay(smtputf8=request.param)
    server.controller.start()
    yield server
    server.controller.stop()


@pytest.fixture
def utf8_relay() -> Iterator[Relay]:
    server = Relay(smtputf8=True)
    server.controller.start()
    yield server
    server.controller.stop()


def via(settings: Settings, relay: Relay) -> Settings:
    return settings.model_copy(update={"smtp_url": relay.url})


def set_column(settings: Settings, address: str, **values: object) -> None:
    """Change a stored subscriber directly, bypassing every check of the forms."""
    with session_scope(settings.database_url) as session:
        session.execute(update(Subscriber).where(Subscriber.email == address).values(**values))


def run_status(settings: Settings, run_id: int) -> str:
    with session_scope(settings.database_url) as session:
        return session.get_one(DigestRun, run_id).status


def errors_by_email(settings: Settings, run_id: int) -> dict[str, str | None]:
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.error)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.run_id == run_id)
        ).all()
    return dict(rows)


def assert_only_our_headers(raw: bytes, message: EmailMessage) -> None:
    assert set(message.keys()) == OUR_HEADERS
    assert all(len(message.get_all(name, [])) == 1 for name in OUR_HEADERS)
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    for line in header_block.split(b"\r\n"):
        # Every line is one of our fields or the folded continuation of one.
        assert line[:1] in (b" ", b"\t") or line.split(b":", 1)[0].decode() in OUR_HEADERS, line


# --- 1. Header injection -------------------------------------------------------------


@pytest.mark.parametrize("evil", INJECTIONS)
def test_an_encoded_word_name_cannot_add_headers_to_a_digest(
    settings: Settings, utf8_relay: Relay, evil: str
) -> None:
    seed(settings, ["kari@kommune.no"])
    set_column(settings, "kari@kommune.no", name=evil)
    started = start(settings)
    report = deliver_chunk(via(settings, utf8_relay), started.run_id, started.chunks[0])
    assert report.sent == 1, report.errors
    (raw,), (message,) = utf8_relay.inbox.raw, utf8_relay.inbox.messages
    assert_only_our_headers(raw, message)
    (to,) = message["To"].addresses
    assert to.addr_spec == "kari@kommune.no"
    assert "\r" not in to.display_name and "\n" not in to.display_name
    assert to.display_name.startswith("Kari Reply-To: x@evil.example")
    assert "=?" not in to.display_name
    assert message["Subject"].startswith("Veiledervarsel ")
    assert message["From"].addresses[0].addr_spec == "varsel@veiledervarsel.no"


@pytest.mark.parametrize("evil", INJECTIONS)
def test_an_encoded_word_name_cannot_add_headers_to_a_notice(
    settings: Settings, utf8_relay: Relay, evil: str
) -> None:
    # The mail with the manage link greets a confirmed person by the stored name.
    with session_scope(settings.database_url) as session:
        subscriber = add_subscriber(session, "kari@kommune.no", choices(), confirmed=True)
    set_column(settings, "kari@kommune.no", name=evil)
    with session_scope(settings.database_url) as session:
        subscriber = session.scalar(select(Subscriber))
        notice = queue_notice(session, subscriber, "link")
        assert notice is not None
        notice_id = notice.id
    report = send_notices(via(settings, utf8_relay), [notice_id])
    assert report.sent == 1, report.errors
    (raw,), (message,) = utf8_relay.inbox.raw, utf8_relay.inbox.messages
    assert_only_our_headers(raw, message)
    (to,) = message["To"].addresses
    assert to.display_name.startswith("Kari Reply-To: x@evil.example")
    assert "\n" not in to.display_name and "=?" not in to.display_name
    assert "Reply-To" not in message


def test_a_sender_name_set_in_code_is_cleaned_too(settings: Settings, utf8_relay: Relay) -> None:
    # The setting is checked at start-up; a copy made in code is not, and still cannot
    # put a header line into a mail.
    seed(settings, ["a@kommune.no"])
    started = start(settings)
    unsafe = via(settings, utf8_relay).model_copy(update={"from_name": "Varsel\r\nBcc: x@evil"})
    report = deliver_chunk(unsafe, started.run_id, started.chunks[0])
    assert report.sent == 1, report.errors
    (message,) = utf8_relay.inbox.messages
    assert "Bcc" not in message
    assert message["From"].addresses[0].display_name == "Varsel Bcc: x@evil"
    assert utf8_relay.inbox.recipients() == ["a@kommune.no"]


def test_a_header_value_with_a_line_break_is_refused_and_the_rest_go_on(
    settings: Settings, utf8_relay: Relay
) -> None:
    seed(settings, ["a@kommune.no", "b@kommune.no", "c@kommune.no"])
    set_column(settings, "b@kommune.no", email="b@kommune.no\r\nBcc: x@evil.example")
    started = start(settings)
    report = deliver_chunk(via(settings, utf8_relay), started.run_id, started.chunks[0])
    assert (report.sent, report.failed) == (2, 1)
    assert utf8_relay.inbox.recipients() == ["a@kommune.no", "c@kommune.no"]
    for message in utf8_relay.inbox.messages:
        assert "Bcc" not in message
    errors = errors_by_email(settings, started.run_id)
    assert "line break" in (errors["b@kommune.no\r\nBcc: x@evil.example"] or "")
    assert statuses(settings, started.run_id) == {"sent": 2, "failed": 1}
    assert run_status(settings, started.run_id) == "complete"
    with session_scope(settings.database_url) as session:
        assert set(session.scalars(select(Subscriber.status))) == {Status.ACTIVE.value}


# --- 15. Non-ASCII addresses and any exception while building one mail ----------------


def test_non_ascii_addresses_never_wedge_a_run(settings: Settings, relay: Relay) -> None:
    seed(settings, ["æøå@kommune.no", "test@bærum.kommune.no", "ok@kommune.no"])
    started = start(settings)
    report = deliver_chunk(via(settings, relay), started.run_id, started.chunks[0])
    smtputf8 = relay.controller.SMTP_kwargs["enable_SMTPUTF8"]
    expected = ["ok@kommune.no", "test@xn--brum-voa.kommune.no"]
    if smtputf8:
        expected = sorted([*expected, "æøå@kommune.no"])
    assert relay.inbox.recipients() == expected
    to_headers = sorted(m["To"].addresses[0].addr_spec for m in relay.inbox.messages)
    assert to_headers == expected  # the domain goes out IDNA-encoded in To as well
    if smtputf8:
        assert statuses(settings, started.run_id) == {"sent": 3}
    else:
        assert statuses(settings, started.run_id) == {"sent": 2, "failed": 1}
        assert "SMTPUTF8" in (errors_by_email(settings, started.run_id)["æøå@kommune.no"] or "")
        assert report.failed == 1
    assert run_status(settings, started.run_id) == "complete"
    with session_scope(settings.database_url) as session:
        assert set(session.scalars(select(Subscriber.status))) == {Status.ACTIVE.value}


def test_digest_send_reports_an_unmailable_address_without_a_traceback(
    settings: Settings, env: pytest.MonkeyPatch
) -> None:
    ascii_only = Relay(smtputf8=False)
    ascii_only.controller.start()
    try:
        seed(settings, ["æøå@kommune.no", "ok@kommune.no"])
        result = command.digest(
            "send",
            "daily",
            "--at",
            RUN_AT.isoformat(),
            env={**os.environ, "DIGEST_SMTP_URL": ascii_only.url},
            timeout=60,
        )
    finally:
        ascii_only.controller.stop()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "æøå@kommune.no" in result.stderr and "SMTPUTF8" in result.stderr
    assert "1 failed" in result.stdout and "1 sent" in result.stdout
    assert ascii_only.inbox.recipients() == ["ok@kommune.no"]


def test_a_mail_that_cannot_be_composed_fails_alone(settings: Settings, smtp) -> None:
    seed(settings, ["a@kommune.no", "broken@kommune.no", "c@kommune.no"])
    set_column(settings, "broken@kommune.no", topics=5)  # a corrupt row: not a list
    started = start(settings)
    report = deliver_chunk(settings, started.run_id, started.chunks[0])
    assert (report.sent, report.failed) == (2, 1)
    assert statuses(settings, started.run_id) == {"sent": 2, "failed": 1}
    assert "TypeError" in (errors_by_email(settings, started.run_id)["broken@kommune.no"] or "")
    assert run_status(settings, started.run_id) == "complete"


def test_a_notice_to_an_unmailable_address_fails_and_never_stays_sending(
    settings: Settings,
) -> None:
    ascii_only = Relay(smtputf8=False)
    ascii_only.controller.start()
    try:
        ids = []
        with session_scope(settings.database_url) as session:
            for email in ("æøå@kommune.no", "test@bærum.kommune.no"):
                notice = queue_notice(session, add_subscriber(session, email, choices()), "confirm")
                assert notice is not None
                ids.append(notice.id)
        report = send_notices(via(settings, ascii_only), ids)
    finally:
        ascii_only.controller.stop()
    assert (report.sent, report.failed) == (1, 1)
    assert ascii_only.inbox.recipients() == ["test@xn--brum-voa.kommune.no"]
    with session_scope(settings.database_url) as session:
        rows = {n.id: n for n in session.scalars(select(Notice))}
        assert rows[ids[0]].status == MailStatus.FAILED and "SMTPUTF8" in (rows[ids[0]].error or "")
        assert rows[ids[1]].status == MailStatus.SENT
        assert lost_notices(session, datetime.now(UTC) + timedelta(days=30)) == []


# --- 16. One claim and one stale-claim path for deliveries and notices ----------------


def test_a_delivery_lost_between_claim_and_send_is_recovered_and_sent_once(
    settings: Settings, smtp
) -> None:
    seed(settings, ["a@kommune.no", "b@kommune.no"])
    started = start(settings)
    long_ago = datetime.now(UTC) - STALE_CLAIM - timedelta(minutes=1)
    with session_scope(settings.database_url) as session:
        first = session.scalars(select(Delivery.id).order_by(Delivery.id)).first()
        assert first is not None
        # A worker claims it through the real path, then dies before sending.
        assert claim(session, Delivery, first, datetime.now(UTC))
    # Another worker, before the claim is stale, leaves it alone.
    deliver_chunk(settings, started.run_id, started.chunks[0])
    assert [e[1] for e in smtp.inbox.envelopes] == [["b@kommune.no"]]
    assert run_status(settings, started.run_id) == "running"
    with session_scope(settings.database_url) as session:
        session.execute(update(Delivery).where(Delivery.id == first).values(claimed_at=long_ago))
        session.execute(update(DigestRun).values(created_at=long_ago))
    with session_scope(settings.database_url) as session:
        chunks = runs.unfinished_chunks(session, datetime.now(UTC))
    assert chunks == [(started.run_id, [1])]
    for run_id, chunk in chunks:
        deliver_chunk(settings, run_id, chunk)
        deliver_chunk(settings, run_id, chunk)  # a duplicate message changes nothing
    assert sorted(e[1][0] for e in smtp.inbox.envelopes) == ["a@kommune.no", "b@kommune.no"]
    assert statuses(settings, started.run_id) == {"sent": 2}
    assert run_status(settings, started.run_id) == "complete"


def test_a_notice_lost_between_claim_and_send_is_recovered_and_sent_once(
    settings: Settings, smtp
) -> None:
    with session_scope(settings.database_url) as session:
        notice = queue_notice(
            session, add_subscriber(session, "a@kommune.no", choices()), "confirm"
        )
        assert notice is not None
        notice_id = notice.id
    with session_scope(settings.database_url) as session:
        assert claim(session, Notice, notice_id, datetime.now(UTC))
    now = datetime.now(UTC)
    with session_scope(settings.database_url) as session:
        assert lost_notices(session, now) == []  # a fresh claim is someone's work
        row = session.get_one(Notice, notice_id)
        assert (row.status, row.attempts) == (MailStatus.SENDING, 1)
    assert send_notices(settings, [notice_id]).sent == 0  # claimed: not sent twice
    with session_scope(settings.database_url) as session:
        session.execute(update(Notice).values(claimed_at=now - STALE_CLAIM - timedelta(minutes=1)))
    with session_scope(settings.database_url) as session:
        lost = lost_notices(session, now)
    assert lost == [notice_id]
    send_notices(settings, lost)
    send_notices(settings, lost)
    assert len(smtp.inbox.messages) == 1
    with session_scope(settings.database_url) as session:
        row = session.get_one(Notice, notice_id)
        assert (row.status, row.attempts) == (MailStatus.SENT, 2)
        assert lost_notices(session, now + timedelta(days=1)) == []


def test_a_pending_notice_is_recovered_by_the_sweep(settings: Settings, smtp) -> None:
    with session_scope(settings.database_url) as session:
        notice = queue_notice(session, add_subscriber(session, "a@kommune.no", choices()), "link")
        assert notice is not None
        notice_id = notice.id
    with session_scope(settings.database_url) as session:
        assert lost_notices(session, datetime.now(UTC)) == []  # just queued: its sender has it
        assert lost_notices(session, datetime.now(UTC) + timedelta(hours=1)) == [notice_id]
    send_notices(settings, [notice_id])
    assert len(smtp.inbox.messages) == 1


# --- 21. A relay's trouble is not the recipients' fault -------------------------------


def test_a_relay_refusing_everyone_for_a_while_costs_nobody_anything(
    settings: Settings, utf8_relay: Relay
) -> None:
    emails = [f"k{n}@kommune.no" for n in range(4)]
    seed(settings, emails)
    started = start(settings)
    relaying = via(settings, utf8_relay)
    utf8_relay.inbox.refuse_all = "451 4.7.1 Greylisted, try again later"
    for _attempt in range(12):  # longer than all the retries of a delivery
        report = deliver_chunk(relaying, started.run_id, started.chunks[0])
        assert report.retry == 4 and report.failed == 0
        backoff_over(settings)
    assert statuses(settings, started.run_id) == {"pending": 4}
    with session_scope(settings.database_url) as session:
        people = session.execute(select(Subscriber.status, Subscriber.soft_failures)).all()
        assert set(people) == {(Status.ACTIVE.value, 0)}
        assert runs.unfinished_chunks(session, datetime.now(UTC) + timedelta(hours=1)) == [
            (started.run_id, started.chunks[0])
        ]
    utf8_relay.inbox.refuse_all = None
    backoff_over(settings)
    deliver_chunk(relaying, started.run_id, started.chunks[0])
    deliver_chunk(relaying, started.run_id, started.chunks[0])
    assert utf8_relay.inbox.recipients() == sorted(emails)
    assert statuses(settings, started.run_id) == {"sent": 4}
    assert run_status(settings, started.run_id) == "complete"
    with session_scope(settings.database_url) as session:
        assert set(session.scalars(select(Subscriber.status))) == {Status.ACTIVE.value}


def test_one_refused_recipient_counts_one_soft_bounce_per_delivery(
    settings: Settings, utf8_relay: Relay
) -> None:
    seed(settings, ["a@kommune.no", "full@kommune.no", "c@kommune.no"])
    started = start(settings)
    relaying = via(settings, utf8_relay)
    utf8_relay.inbox.refuse["full@kommune.no"] = "452 4.2.2 Mailbox full"
    for _attempt in range(settings.send_attempts - 1):  # the last one would fail it
        deliver_chunk(relaying, started.run_id, started.chunks[0])
        backoff_over(settings)
    with session_scope(settings.database_url) as session:
        full = session.scalar(select(Subscriber).where(Subscriber.email == "full@kommune.no"))
        assert full is not None
        assert (full.status, full.soft_failures) == (Status.ACTIVE.value, 1)
        delivery = session.scalar(select(Delivery).where(Delivery.subscriber_id == full.id))
        assert delivery is not None
        assert delivery.status == MailStatus.PENDING and delivery.bounce_counted
        assert delivery.attempts == settings.send_attempts - 1
        assert "452" in (delivery.error or "")
    assert statuses(settings, started.run_id) == {"sent": 2, "pending": 1}


def test_a_relay_rate_limit_costs_nobody_anything(settings: Settings, utf8_relay: Relay) -> None:
    emails = [f"k{n}@kommune.no" for n in range(5)]
    seed(settings, emails)
    started = start(settings)
    relaying = via(settings, utf8_relay)
    utf8_relay.inbox.limit = 2  # the first two go through, then "try again later"
    report = deliver_chunk(relaying, started.run_id, started.chunks[0])
    assert (report.sent, report.retry) == (2, 3)
    with session_scope(settings.database_url) as session:
        assert set(session.scalars(select(Subscriber.soft_failures))) == {0}
        assert not any(session.scalars(select(Delivery.bounce_counted)))
    utf8_relay.inbox.limit = None
    backoff_over(settings)
    deliver_chunk(relaying, started.run_id, started.chunks[0])
    assert utf8_relay.inbox.recipients() == sorted(emails)
    assert statuses(settings, started.run_id) == {"sent": 5}


def test_a_delivery_gives_up_when_the_next_period_goes_out(
    settings: Settings, utf8_relay: Relay
) -> None:
    seed(settings, ["a@kommune.no", "b@kommune.no", "c@kommune.no"])
    started = start(settings)
    relaying = via(settings, utf8_relay)
    utf8_relay.inbox.refuse["a@kommune.no"] = "452 4.2.2 Mailbox full"
    utf8_relay.inbox.refuse["b@kommune.no"] = "452 4.2.2 Mailbox full"
    deliver_chunk(relaying, started.run_id, started.chunks[0])
    assert statuses(settings, started.run_id) == {"sent": 1, "pending": 2}
    # Two periods later, they have not been accepted: the run gives these up.
    shift_run(settings, started.run_id)
    backoff_over(settings)
    report = deliver_chunk(relaying, started.run_id, started.chunks[0])
    assert report.failed == 2 and report.retry == 0
    assert statuses(settings, started.run_id) == {"sent": 1, "failed": 2}
    errors = errors_by_email(settings, started.run_id)
    assert all("gave up" in (errors[e] or "") for e in ("a@kommune.no", "b@kommune.no"))
    assert run_status(settings, started.run_id) == "complete"


def test_a_relay_away_past_the_next_period_gives_nothing_up(
    settings: Settings, utf8_relay: Relay
) -> None:
    seed(settings, ["a@kommune.no", "b@kommune.no"])
    started = start(settings)
    relaying = via(settings, utf8_relay)
    utf8_relay.inbox.refuse_all = "421 4.3.2 Service not available"
    deliver_chunk(relaying, started.run_id, started.chunks[0])
    assert statuses(settings, started.run_id) == {"pending": 2}
    # Two periods later, nothing has been accepted; none of it was the deliveries' fault.
    shift_run(settings, started.run_id)
    backoff_over(settings)
    report = deliver_chunk(relaying, started.run_id, started.chunks[0])
    assert report.failed == 0 and report.retry == 2
    utf8_relay.inbox.refuse_all = None
    backoff_over(settings)
    deliver_chunk(relaying, started.run_id, started.chunks[0])
    assert statuses(settings, started.run_id) == {"sent": 2}
    assert run_status(settings, started.run_id) == "complete"
    with session_scope(settings.database_url) as session:
        people = session.execute(select(Subscriber.status, Subscriber.soft_failures)).all()
        assert set(people) == {(Status.ACTIVE.value, 0)}


def shift_run(settings: Settings, run_id: int) -> None:
    """Move the run and its changes into the past: the next two periods have gone out."""
    with session_scope(settings.database_url) as session:
        run = session.get_one(DigestRun, run_id)
        shift = datetime.now(UTC) - run.period_start + timedelta(days=3)
        run.period_start, run.period_end = run.period_start - shift, run.period_end - shift
        run.created_at = run.created_at - shift
        for change in session.scalars(select(Change)):
            change.detected_at -= shift
