"""A stranger at the public form: what they can and cannot do to someone else's record.

Everything goes through the real web app on a real port, mails through a real SMTP
server (aiosmtpd), and the links people follow are taken from the mails they received.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from datetime import timedelta
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import delete, func, inspect, select, update

from digest.core.db import session_scope
from digest.core.models import Notice
from digest.core.settings import Settings
from subscribers.base import utcnow
from subscribers.choices import choices
from subscribers.models import ConsentEvent, SignupRequest, Subscriber
from subscribers.signups import MAX_OPEN_REQUESTS, add_subscriber, new_request
from subscribers.suppression import suppress
from subscribers.text import is_safe_line
from tests.support import command
from tests.support.server import csrf
from tests.support.smtp import SMTPServer

KARI = "kari@kommune.no"
OWN = {"name": "Kari Nordmann", "municipality": "0301", "role": "krisesenter", "topics": ["vold"]}
STRANGER = {
    "email": KARI,
    "name": "Ikke Kari",
    "municipality": "5501",
    "role": "barnevern",
    "frequency": "weekly",
    "language": "en",
    "topic": ["barn"],
}


def sign_up(client: httpx.Client, form: dict[str, object]) -> httpx.Response:
    response = client.post("/abonner", data={**form, "csrf": csrf(client)})
    assert response.status_code == 200, response.text
    return response


def mails_to(smtp: SMTPServer, address: str, count: int) -> list[EmailMessage]:
    deadline = time.monotonic() + 10
    while len(smtp.inbox.to(address)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    found = smtp.inbox.to(address)
    assert len(found) == count, [m["Subject"] for m in found]
    return found


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def link(message: EmailMessage, kind: str) -> str:
    return re.search(rf"/{kind}/[A-Za-z0-9_.\-]+", text_of(message))[0]


def confirm(client: httpx.Client, path: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf(client)})


def snapshot(settings: Settings, email: str = KARI) -> dict[str, object]:
    """Everything stored about one person: their row and their consent history."""
    with session_scope(settings.database_url) as session:
        row = session.scalar(select(Subscriber).where(Subscriber.email == email))
        columns = {c.key: getattr(row, c.key) for c in inspect(Subscriber).column_attrs}
        events = session.execute(
            select(ConsentEvent.action, ConsentEvent.at).where(ConsentEvent.subscriber_id == row.id)
        ).all()
        return {**columns, "events": sorted(events)}


def requests_of(settings: Settings, email: str = KARI) -> list[SignupRequest]:
    with session_scope(settings.database_url) as session:
        return list(
            session.scalars(
                select(SignupRequest)
                .join(Subscriber, Subscriber.id == SignupRequest.subscriber_id)
                .where(Subscriber.email == email)
                .order_by(SignupRequest.id)
            )
        )


def known_kari(settings: Settings, status: str) -> None:
    """Kari, who signed up herself long ago, and is now `status`."""
    with session_scope(settings.database_url) as session:
        kari = add_subscriber(session, KARI, choices(**OWN), confirmed=status != "pending")
        kari.created_at = utcnow() - timedelta(days=100)
        if status == "unsubscribed":
            kari.status, kari.unsubscribed_at = status, utcnow() - timedelta(days=3)
        elif status == "suppressed":
            kari.status, kari.suppressed_at = status, utcnow() - timedelta(days=3)
            kari.suppressed_reason = "550 mailbox full"
        session.flush()
        # Her own sign-up was confirmed, or its link ran out long ago.
        session.execute(delete(SignupRequest).where(SignupRequest.subscriber_id == kari.id))


@pytest.mark.parametrize("status", ["pending", "active", "unsubscribed", "suppressed"])
def test_a_sign_up_for_a_known_address_changes_nothing_until_its_owner_confirms(
    client, settings, smtp, status
) -> None:
    known_kari(settings, status)
    before = snapshot(settings)
    sign_up(client, STRANGER)
    [mail] = mails_to(smtp, KARI, 1)
    assert snapshot(settings) == before
    assert "Ikke Kari" not in str(mail["To"])  # the stranger's name is nobody's name yet
    if status == "active":
        assert mail["Subject"] == "Du abonnerer allerede på Veiledervarsel"
        assert "/bekreft/" not in text_of(mail) and requests_of(settings) == []
        return
    assert mail["Subject"] == "Bekreft abonnementet ditt på Veiledervarsel"
    [asked] = requests_of(settings)
    assert asked.choices["name"] == "Ikke Kari" and asked.choices["frequency"] == "weekly"
    # The owner reads the mail and confirms: now, and only now, the choices apply.
    path = link(mail, "bekreft")
    assert client.get(path).status_code == 200 and snapshot(settings) == before
    assert "Ikke Kari" in client.get(path).text  # the page shows what confirming will apply
    answer = confirm(client, path)
    assert "Your subscription is confirmed" in answer.text  # the language it chose
    after = snapshot(settings)
    assert (after["status"], after["name"], after["municipality"], after["role"]) == (
        "active",
        "Ikke Kari",
        "5501",
        "barnevern",
    )
    assert (after["frequency"], after["language"], after["topics"]) == ("weekly", "en", ["barn"])
    assert after["confirmed_at"] is not None and after["created_at"] == before["created_at"]
    assert after["unsubscribed_at"] is None and after["suppressed_at"] is None
    assert requests_of(settings) == []
    assert confirm(client, path).status_code == 400  # used up


def test_confirming_applies_that_request_and_uses_up_the_others(client, settings, smtp) -> None:
    known_kari(settings, "unsubscribed")
    sign_up(client, STRANGER)
    # Each mail goes out after its response: wait for the first, so they arrive in order.
    mails_to(smtp, KARI, 1)
    sign_up(client, {**STRANGER, "name": "Kari N.", "frequency": "immediate", "topic": []})
    first, second = mails_to(smtp, KARI, 2)
    assert len(requests_of(settings)) == 2
    assert "Your subscription is confirmed" in confirm(client, link(second, "bekreft")).text
    row = snapshot(settings)
    assert (row["name"], row["frequency"], row["topics"]) == ("Kari N.", "immediate", [])
    assert requests_of(settings) == []
    assert confirm(client, link(first, "bekreft")).status_code == 400
    assert snapshot(settings)["name"] == "Kari N."


def test_a_brand_new_address_is_pending_with_a_request(client, settings, smtp) -> None:
    sign_up(client, {**STRANGER, "email": "ny@kommune.no"})
    [mail] = mails_to(smtp, "ny@kommune.no", 1)
    row = snapshot(settings, "ny@kommune.no")
    assert (row["status"], row["confirmed_at"], row["name"]) == ("pending", None, "Ikke Kari")
    [asked] = requests_of(settings, "ny@kommune.no")
    with session_scope(settings.database_url) as session:
        notice = session.scalar(select(Notice))
        assert notice.signup_request_id == asked.id
    confirm(client, link(mail, "bekreft"))
    assert snapshot(settings, "ny@kommune.no")["status"] == "active"


def test_a_link_request_for_a_pending_address_resends_its_latest_request(
    client, settings, smtp
) -> None:
    sign_up(client, {**STRANGER, "email": "ny@kommune.no"})
    sign_up(client, {**STRANGER, "email": "ny@kommune.no", "name": "Siste"})
    client.post("/lenke", data={"email": "ny@kommune.no", "csrf": csrf(client, "/lenke")})
    *_, again = mails_to(smtp, "ny@kommune.no", 3)
    assert "/bekreft/" in text_of(again)
    assert len(requests_of(settings, "ny@kommune.no")) == 2
    confirm(client, link(again, "bekreft"))
    row = snapshot(settings, "ny@kommune.no")
    assert (row["status"], row["name"]) == ("active", "Siste")


def test_a_link_request_for_a_pending_address_without_requests_opens_one(
    client, settings, smtp
) -> None:
    with session_scope(settings.database_url) as session:  # made before requests existed
        session.add(Subscriber(email="gammel@kommune.no", name="Gammel", frequency="weekly"))
    client.post("/lenke", data={"email": "gammel@kommune.no", "csrf": csrf(client, "/lenke")})
    [mail] = mails_to(smtp, "gammel@kommune.no", 1)
    [asked] = requests_of(settings, "gammel@kommune.no")
    assert asked.choices["name"] == "Gammel" and asked.choices["frequency"] == "weekly"
    confirm(client, link(mail, "bekreft"))
    assert snapshot(settings, "gammel@kommune.no")["status"] == "active"


def test_a_sign_up_that_sends_no_mail_keeps_nothing(client, settings, smtp) -> None:
    known_kari(settings, "unsubscribed")
    for _ in range(5):  # three mails an hour to one address, then nothing
        sign_up(client, STRANGER)
    mails_to(smtp, KARI, 3)
    assert len(requests_of(settings)) == 3


def test_requests_for_one_address_are_capped(client, settings, smtp) -> None:
    known_kari(settings, "unsubscribed")
    with session_scope(settings.database_url) as session:
        kari = session.scalar(select(Subscriber).where(Subscriber.email == KARI))
        for hours in range(MAX_OPEN_REQUESTS, 0, -1):
            asked = new_request(session, kari, choices(name=f"Nr {hours}"), "web")
            asked.created_at = utcnow() - timedelta(hours=hours)
    sign_up(client, {**STRANGER, "name": "Nr 0"})
    [mail] = mails_to(smtp, KARI, 1)
    # Nothing more is stored: the oldest request went to make room for the newest.
    kept = [r.choices["name"] for r in requests_of(settings)]
    assert len(kept) == MAX_OPEN_REQUESTS and "Nr 5" not in kept and "Nr 0" in kept
    confirm(client, link(mail, "bekreft"))  # the newest sign-up is the one confirmed
    assert snapshot(settings)["name"] == "Nr 0"


def test_a_confirmation_mail_carries_no_text_from_the_form(client, settings, smtp) -> None:
    spam = "Kari. VIKTIG: abonnementet koster 4990 kr. Stopp trekket på https://evil.example/"
    sign_up(client, {**STRANGER, "email": "ny@kommune.no", "name": spam})
    [mail] = mails_to(smtp, "ny@kommune.no", 1)
    assert "evil.example" not in mail.as_string() and "4990" not in mail.as_string()
    assert str(mail["To"]) == "ny@kommune.no"


def test_a_request_made_before_a_suppression_cannot_lift_it(client, settings, smtp) -> None:
    sign_up(client, {**STRANGER, "email": "ny@kommune.no"})
    [mail] = mails_to(smtp, "ny@kommune.no", 1)
    with session_scope(settings.database_url) as session:
        row = session.scalar(select(Subscriber).where(Subscriber.email == "ny@kommune.no"))
        suppress(session, row, "550 5.1.1 no such user")
    assert confirm(client, link(mail, "bekreft")).status_code == 400
    assert snapshot(settings, "ny@kommune.no")["status"] == "suppressed"


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    return command.digest(*args, timeout=60)


def age(settings: Settings, email: str, days: int) -> None:
    """Move a person's sign-up and requests `days` into the past."""
    then = utcnow() - timedelta(days=days)
    with session_scope(settings.database_url) as session:
        row = session.scalar(select(Subscriber).where(Subscriber.email == email))
        row.created_at = then
        session.execute(
            update(SignupRequest)
            .where(SignupRequest.subscriber_id == row.id)
            .values(created_at=then)
        )


# The sweep as a worker runs it: through the broker, in its unit of work.
SWEEP = "from digest import actors; actors.recover.send(); actors.work_here()"


@pytest.mark.parametrize("how", ["cli", "sweep"])
def test_unconfirmed_sign_ups_are_deleted_when_their_link_has_expired(
    client, settings, smtp, how
) -> None:
    known_kari(settings, "unsubscribed")
    sign_up(client, STRANGER)  # a request about Kari, who left
    sign_up(client, {**STRANGER, "email": "parkert@kommune.no", "name": "=?utf-8?q?x?="})
    sign_up(client, {**STRANGER, "email": "nylig@kommune.no"})
    mails_to(smtp, "nylig@kommune.no", 1)
    age(settings, "parkert@kommune.no", 9)
    age(settings, "nylig@kommune.no", 6)
    with session_scope(settings.database_url) as session:  # Kari's request ran out too
        kari = session.scalar(select(Subscriber).where(Subscriber.email == KARI))
        session.execute(
            update(SignupRequest)
            .where(SignupRequest.subscriber_id == kari.id)
            .values(created_at=utcnow() - timedelta(days=8, minutes=1))
        )
    kari_before = snapshot(settings)
    if how == "cli":
        result = digest("subscribers", "purge")
        assert "deleted 2 expired sign-up request(s) and 1 unconfirmed address(es)" in (
            result.stdout
        )
    else:  # the recovery sweep the scheduler runs
        result = command.run(["-c", SWEEP], timeout=60)
    assert result.returncode == 0, result.stderr
    with session_scope(settings.database_url) as session:
        left = set(session.scalars(select(Subscriber.email)))
        assert left == {KARI, "nylig@kommune.no"}
        assert session.scalar(select(func.count()).select_from(SignupRequest)) == 1
    assert snapshot(settings) == kari_before  # Kari herself is not touched by a stranger
    assert requests_of(settings) == []


def payload(token: str) -> str:
    """What anyone who sees the link can read from it: the token's first part, decoded."""
    part = token.split(".")[0]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8", "replace")


def test_links_name_no_one(client, settings, smtp) -> None:
    sign_up(client, {**STRANGER, "email": "ola.nordmann@kommune.no"})
    [mail] = mails_to(smtp, "ola.nordmann@kommune.no", 1)
    confirm_path = link(mail, "bekreft")
    confirm(client, confirm_path)
    client.post("/lenke", data={"email": "ola.nordmann@kommune.no", "csrf": csrf(client, "/lenke")})
    _, manage_mail = mails_to(smtp, "ola.nordmann@kommune.no", 2)
    manage_path = link(manage_mail, "innstillinger")
    unsubscribe_path = re.search(r"/avmelding/[^>\s]+", str(manage_mail["List-Unsubscribe"]))[0]
    with session_scope(settings.database_url) as session:
        ola = session.scalar(
            select(Subscriber).where(Subscriber.email == "ola.nordmann@kommune.no")
        )
    for path in (confirm_path, manage_path, unsubscribe_path):
        token = path.rsplit("/", 1)[1]
        readable = payload(token)
        assert "ola" not in readable.lower() and "kommune" not in readable
        assert json.loads(readable) != ola.id and not isinstance(json.loads(readable), dict)
    # A manage token is not an unsubscribe token, and an altered token is refused.
    manage_token = manage_path.rsplit("/", 1)[1]
    assert client.post(f"/avmelding/{manage_token}").status_code == 400
    forged = base64.urlsafe_b64encode(json.dumps(ola.id).encode()).decode().rstrip("=")
    assert client.get(f"/innstillinger/{forged}.{manage_token.split('.', 1)[1]}").status_code == 400
    assert client.get(manage_path[:-2] + "xy").status_code == 400
    assert client.get(manage_path).status_code == 200


def test_an_erased_persons_old_link_does_not_work_for_a_new_row(client, settings, smtp) -> None:
    sign_up(client, {**STRANGER, "email": "ola@kommune.no"})
    [first] = mails_to(smtp, "ola@kommune.no", 1)
    confirm(client, link(first, "bekreft"))
    client.post("/lenke", data={"email": "ola@kommune.no", "csrf": csrf(client, "/lenke")})
    _, manage_mail = mails_to(smtp, "ola@kommune.no", 2)
    old_manage = link(manage_mail, "innstillinger")
    with session_scope(settings.database_url) as session:
        old_id = session.scalar(select(Subscriber.id).where(Subscriber.email == "ola@kommune.no"))
    assert digest("subscribers", "erase", "ola@kommune.no", "--yes").returncode == 0
    sign_up(client, {**STRANGER, "email": "ola@kommune.no", "name": "Ola igjen"})
    _, _, again = mails_to(smtp, "ola@kommune.no", 3)
    confirm(client, link(again, "bekreft"))
    with session_scope(settings.database_url) as session:
        new_id = session.scalar(select(Subscriber.id).where(Subscriber.email == "ola@kommune.no"))
    assert new_id == old_id  # SQLite gives the same id again: the token must not name it
    assert client.get(old_manage).status_code == 400


ENCODED_NAME = (
    "=?utf-8?q?Kari=0D=0AReply-To:_x@evil.example=0D=0ASubject:_Faktura=0D=0A=0D=0Abetal?="
)


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        (ENCODED_NAME, "Kari Reply-To: x@evil.example Subject: Faktura betal"),
        ("Faktura \u202efdp.exe", "Faktura fdp.exe"),
        ("Ka\u200bri\u2028Nord\u00admann\ufeff", "Kari Nordmann"),
    ],
)
def test_names_from_the_form_are_stored_as_one_clean_line(
    client, settings, smtp, name, stored
) -> None:
    sign_up(client, {**STRANGER, "email": "ny@kommune.no", "name": name, "language": "nb"})
    [mail] = mails_to(smtp, "ny@kommune.no", 1)
    row = snapshot(settings, "ny@kommune.no")
    assert row["name"] == stored and is_safe_line(row["name"])
    [asked] = requests_of(settings, "ny@kommune.no")
    assert asked.choices["name"] == stored
    assert mail["Reply-To"] is None and mail["Subject"].startswith("Bekreft")
    assert "evil" not in str(mail["Subject"]) and "\u202e" not in text_of(mail)
