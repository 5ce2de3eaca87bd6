"""GDPR: what is stored about a person, erasure that keeps only a salted hash, retention."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

from sqlalchemy import func, select

from digest.core.db import session_scope
from subscribers.base import utcnow
from subscribers.choices import choices
from subscribers.models import ConsentEvent, Subscriber, Suppression
from subscribers.privacy import purge_unsubscribed
from subscribers.signups import add_subscriber, sign_up, unsubscribe
from subscribers.suppression import address_hash, is_suppressed
from tests.support import command


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    return command.digest(*args, timeout=60)


def test_show_gives_everything_as_json(settings) -> None:
    assert (
        digest(
            "subscribers",
            "add",
            "kari@kommune.no",
            "--name",
            "Kari Ødegård",
            "--municipality",
            "Tromsø",
            "--topic",
            "vold",
            "--confirmed",
            "--basis",
            "telefonsamtale 3. mars",
        ).returncode
        == 0
    )
    result = digest("subscribers", "show", "KARI@kommune.no")
    data = json.loads(result.stdout)
    assert data["email"] == "kari@kommune.no" and data["name"] == "Kari Ødegård"
    assert data["municipality"] == "5501" and data["topics"] == ["vold"]
    assert [(e["action"], e["channel"], e["detail"]) for e in data["consent_events"]] == [
        ("subscribed", "admin", "telefonsamtale 3. mars"),
        ("confirmed", "admin", "telefonsamtale 3. mars"),
    ]
    assert data["deliveries"] == [] and data["notices"] == []


def test_erase_keeps_only_a_salted_hash(settings) -> None:
    digest("subscribers", "add", "kari@kommune.no", "--confirmed")
    assert digest("subscribers", "erase", "kari@kommune.no", "--yes").returncode == 0
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
        hashes = session.scalars(select(Suppression.address_hash)).all()
        assert hashes == [address_hash(settings.secret_key, "kari@kommune.no")]
        assert "kari" not in hashes[0]
        assert is_suppressed(session, settings.secret_key, "kari@kommune.no")
    assert digest("subscribers", "show", "kari@kommune.no").returncode == 1


def test_retention_deletes_people_who_left_long_ago(settings) -> None:
    with session_scope(settings.database_url) as session:
        old = add_subscriber(session, "gammel@kommune.no", choices(), confirmed=True)
        recent = add_subscriber(session, "nylig@kommune.no", choices(), confirmed=True)
        add_subscriber(session, "aktiv@kommune.no", choices(), confirmed=True)
        unsubscribe(session, old)
        unsubscribe(session, recent)
        old.unsubscribed_at = utcnow() - timedelta(days=400)
    with session_scope(settings.database_url) as session:
        count = purge_unsubscribed(session, settings.secret_key, utcnow() - timedelta(days=365))
        left = set(session.scalars(select(Subscriber.email)))
        assert count == 1 and left == {"nylig@kommune.no", "aktiv@kommune.no"}
        assert is_suppressed(session, settings.secret_key, "gammel@kommune.no")
    assert "erased 0 person(s)" in digest("subscribers", "purge").stdout


def test_show_includes_sign_ups_waiting_for_confirmation(settings) -> None:
    with session_scope(settings.database_url) as session:
        kari = add_subscriber(session, "kari@kommune.no", choices(name="Kari"), confirmed=True)
        unsubscribe(session, kari)
        sign_up(session, "kari@kommune.no", choices(name="Noen andre", frequency="weekly"))
    data = json.loads(digest("subscribers", "show", "kari@kommune.no").stdout)
    assert data["name"] == "Kari" and data["status"] == "unsubscribed"
    [waiting] = data["signup_requests"]
    assert waiting["channel"] == "web"
    assert (waiting["choices"]["name"], waiting["choices"]["frequency"]) == ("Noen andre", "weekly")
