"""Sign-up and link requests over HTTP: no enumeration, limits, CSRF, size, tokens."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import Notice
from digest.core.settings import Settings
from subscribers.base import utcnow
from subscribers.choices import choices
from subscribers.models import Subscriber
from subscribers.signups import add_subscriber, latest_request
from subscribers.tokens import make_token
from tests.support.server import csrf
from tests.support.smtp import SMTPServer


def subscriber(settings: Settings, email: str) -> Subscriber | None:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(Subscriber).where(Subscriber.email == email))


def notices(settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(Notice))


def wait_for_mail(smtp: SMTPServer, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(smtp.inbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_same_answer_for_known_and_unknown_addresses(client, settings, smtp) -> None:
    with session_scope(settings.database_url) as session:
        add_subscriber(session, "kjent@kommune.no", choices(), confirmed=True)
    token = csrf(client, "/lenke")
    known = client.post("/lenke", data={"email": "kjent@kommune.no", "csrf": token})
    unknown = client.post("/lenke", data={"email": "ukjent@kommune.no", "csrf": token})
    assert known.status_code == unknown.status_code == 200
    strip = lambda r: re.sub(r'value="[^"]*"', "", r.text)  # noqa: E731
    assert strip(known) == strip(unknown)
    wait_for_mail(smtp, 1)
    assert [m["To"] for m in smtp.inbox.messages] == ["kjent@kommune.no"]
    # Signing up an address that is already active changes nothing and mails its link.
    signed = client.post(
        "/abonner",
        data={"email": "kjent@kommune.no", "frequency": "weekly", "language": "nb", "csrf": token},
    )
    fresh = client.post(
        "/abonner",
        data={"email": "ny@kommune.no", "frequency": "weekly", "language": "nb", "csrf": token},
    )
    assert strip(signed) == strip(fresh)
    assert subscriber(settings, "kjent@kommune.no").frequency == "daily"
    wait_for_mail(smtp, 3)
    subjects = sorted(str(m["Subject"]) for m in smtp.inbox.messages[1:])
    assert subjects == [
        "Bekreft abonnementet ditt på Veiledervarsel",
        "Du abonnerer allerede på Veiledervarsel",
    ]


def test_per_address_limit(client, settings, smtp) -> None:
    token = csrf(client)
    for _ in range(5):
        client.post(
            "/abonner",
            data={
                "email": "mange@kommune.no",
                "frequency": "daily",
                "language": "nb",
                "csrf": token,
            },
        )
    assert notices(settings) == 3  # at most three mails an hour to one address


def test_per_client_limit(client, settings) -> None:
    token = csrf(client)
    answers = [
        client.post("/lenke", data={"email": f"a{n}@kommune.no", "csrf": token}).status_code
        for n in range(12)
    ]
    assert answers[:10] == [200] * 10 and answers[10:] == [429, 429]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "kari@kommune.no\r\nBcc: x@y.no"}, "gyldig e-postadresse"),
        ({"email": "k" * 300 + "@kommune.no"}, "gyldig e-postadresse"),
        ({"email": "kari@kommune.no", "municipality": "Atlantis"}, "Velg en kommune"),
        ({"email": "kari@kommune.no", "topic": "fotball"}, "Velg temaer"),
        ({"email": "kari@kommune.no", "frequency": "hourly"}, "hvor ofte"),
        (
            {"email": "kari@kommune.no", "name": "<script>alert(1)</script>", "role": "pilot"},
            "Velg en rolle",
        ),
    ],
)
def test_bad_sign_ups_are_refused_clearly(client, settings, form, message) -> None:
    response = client.post(
        "/abonner", data={"frequency": "daily", "language": "nb", **form, "csrf": csrf(client)}
    )
    assert response.status_code == 400 and message in response.text
    assert "<script>alert(1)</script>" not in response.text
    assert notices(settings) == 0
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_forms_need_their_csrf_field(client, settings) -> None:
    client.get("/")
    response = client.post("/abonner", data={"email": "kari@kommune.no", "frequency": "daily"})
    assert response.status_code == 403 and subscriber(settings, "kari@kommune.no") is None


def test_a_50_mb_upload_is_refused(client, settings) -> None:
    body = b"email=kari%40kommune.no&name=" + b"x" * 50_000_000
    try:
        response = client.post(
            "/abonner", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 413
    except httpx.HTTPError:
        pass  # the server may hang up before the client has finished sending
    assert subscriber(settings, "kari@kommune.no") is None


def test_confirm_links_expire_and_cannot_be_replayed(client, settings, smtp) -> None:
    with session_scope(settings.database_url) as session:
        kari = add_subscriber(session, "kari@kommune.no", choices())
        nonce, kari_ref = latest_request(session, kari).nonce, kari.ref
    token = make_token(settings.secret_key, "confirm", nonce)

    class EightDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 24 * 3600

    old = URLSafeTimedSerializer(
        settings.secret_key, salt="digest.confirm", signer=EightDaysAgo
    ).dumps(nonce)
    expired = client.get(f"/bekreft/{old}")
    assert expired.status_code == 400 and "utløpt" in expired.text

    page = client.get(f"/bekreft/{token}")
    field = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
    first = client.post(f"/bekreft/{token}", data={"csrf": field})
    assert "Abonnementet er bekreftet" in first.text
    again = client.post(f"/bekreft/{token}", data={"csrf": field})
    assert again.status_code == 400 and "allerede brukt" in again.text
    assert client.get(f"/bekreft/{token}").status_code == 400  # no button for a used link
    unsubscribe = make_token(settings.secret_key, "unsubscribe", kari_ref)
    client.post(f"/avmelding/{unsubscribe}")
    replay = client.post(f"/bekreft/{token}", data={"csrf": field})
    assert replay.status_code == 400 and "allerede brukt" in replay.text
    assert subscriber(settings, "kari@kommune.no").status == "unsubscribed"
    tampered = client.get(f"/bekreft/{token[:-3]}abc")
    assert tampered.status_code == 400


def test_a_request_older_than_seven_days_is_expired_whatever_its_link(
    client, settings, smtp
) -> None:
    with session_scope(settings.database_url) as session:
        kari = add_subscriber(session, "kari@kommune.no", choices())
        asked = latest_request(session, kari)
        asked.created_at = utcnow() - timedelta(days=7, minutes=1)
        token = make_token(settings.secret_key, "confirm", asked.nonce)
    assert "utløpt" in client.get(f"/bekreft/{token}").text
    answer = client.post(f"/bekreft/{token}", data={"csrf": csrf(client)})
    assert answer.status_code == 400 and "utløpt" in answer.text
    assert subscriber(settings, "kari@kommune.no").status == "pending"


def test_a_manage_token_cannot_confirm_or_unsubscribe(client, settings) -> None:
    with session_scope(settings.database_url) as session:
        kari = add_subscriber(session, "kari@kommune.no", choices(), confirmed=True)
        manage = make_token(settings.secret_key, "manage", kari.ref)
    assert client.get(f"/bekreft/{manage}").status_code == 400
    assert client.post(f"/avmelding/{manage}").status_code == 400
    assert subscriber(settings, "kari@kommune.no").status == "active"
