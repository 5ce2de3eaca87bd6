"""The web app: health, unsubscribe (page and RFC 8058 one-click), and managing preferences."""

from __future__ import annotations

import re

import httpx
import pytest

from digest.core.db import session_scope
from digest.core.settings import Settings
from digest.web.app import create_app
from subscribers.choices import choices
from subscribers.models import Subscriber
from subscribers.signups import add_subscriber
from subscribers.tokens import make_token
from tests.support.server import LiveServer


@pytest.fixture
def kari(settings: Settings) -> Subscriber:
    with session_scope(settings.database_url) as session:
        return add_subscriber(session, "kari@kommune.no", choices(topics=["vold"]), confirmed=True)


def status_of(settings: Settings, subscriber_id: int) -> Subscriber:
    with session_scope(settings.database_url) as session:
        return session.get_one(Subscriber, subscriber_id)


def test_healthz_checks_the_database(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "relay": "ok"}


def test_a_dead_broker_fails_readiness_not_liveness(settings: Settings) -> None:
    from tests.support.smtp import free_port

    broken = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    server = LiveServer(create_app(broken)).start()
    try:
        live, ready = server.client().get("/healthz"), server.client().get("/readyz")
    finally:
        server.stop()
    assert live.status_code == 200 and live.json()["broker"] != "ok"
    assert ready.status_code == 503 and ready.json()["broker"] != "ok"


def test_get_shows_a_button_and_changes_nothing(client, settings, kari) -> None:
    token = make_token(settings.secret_key, "unsubscribe", kari.ref)
    page = client.get(f"/avmelding/{token}")
    assert page.status_code == 200
    assert '<form method="post">' in page.text and "Meld meg av" in page.text
    assert status_of(settings, kari.id).status == "active"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"


def test_one_click_post_unsubscribes_and_is_idempotent(client, settings, kari) -> None:
    token = make_token(settings.secret_key, "unsubscribe", kari.ref)
    for _ in range(2):
        response = client.post(f"/avmelding/{token}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200 and "Du er meldt av" in response.text
    row = status_of(settings, kari.id)
    assert row.status == "unsubscribed" and row.unsubscribed_at is not None


@pytest.mark.parametrize("purpose", ["manage", "forged"])
def test_wrong_or_forged_tokens_get_400_and_change_nothing(client, settings, kari, purpose) -> None:
    token = (
        make_token(settings.secret_key, "manage", kari.ref)
        if purpose == "manage"
        else make_token("not-the-secret-key-at-all", "unsubscribe", kari.ref)
    )
    response = client.post(f"/avmelding/{token}")
    assert response.status_code == 400 and "Lenken virker ikke" in response.text
    assert status_of(settings, kari.id).status == "active"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def test_manage_page_changes_frequency_and_topics(client, settings, kari) -> None:
    token = make_token(settings.secret_key, "manage", kari.ref)
    page = client.get(f"/innstillinger/{token}")
    assert page.status_code == 200 and "Barn og unge" in page.text
    form = {
        "frequency": "weekly",
        "topic": ["barn", "krisesenter"],
        "municipality": "0301",
        "name": "Kari Nordmann",
        "language": "nn",
        "role": "krisesenter",
    }
    forged = client.post(f"/innstillinger/{token}", data=form)  # no CSRF field
    assert forged.status_code == 403
    assert status_of(settings, kari.id).frequency == "daily"
    saved = client.post(f"/innstillinger/{token}", data={**form, "csrf": csrf_of(page.text)})
    # Kari chose nynorsk: the page answers in it at once.
    assert saved.status_code == 200 and "Endringane er lagra" in saved.text
    row = status_of(settings, kari.id)
    assert (row.frequency, row.topics, row.municipality, row.language) == (
        "weekly",
        ["barn", "krisesenter"],
        "0301",
        "nn",
    )
    refused = client.post(
        f"/innstillinger/{token}", data={"frequency": "hourly", "csrf": csrf_of(page.text)}
    )
    assert refused.status_code == 400
    assert status_of(settings, kari.id).frequency == "weekly"


def test_input_is_escaped_on_pages(client, settings) -> None:
    with session_scope(settings.database_url) as session:
        sub = add_subscriber(
            session, "x@kommune.no", choices(name="<script>alert(1)</script>"), confirmed=True
        )
    token = make_token(settings.secret_key, "manage", sub.ref)
    page = client.get(f"/innstillinger/{token}")
    assert "<script>alert(1)</script>" not in page.text


def test_metrics_count_subscribers_and_sources(client, settings, kari) -> None:
    from digest.watch.sources import load_sources, sync_sources

    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(settings.sources_file))
    body = client.get("/metrics").text
    assert 'digest_subscribers{status="active"} 1' in body
    assert 'digest_sources{status="new"} 2' in body
    assert 'digest_source_consecutive_failures{source="rvts-test"} 0' in body
    assert "# TYPE digest_runs_unfinished gauge" in body


def test_links_in_mails_sent_before_links_became_opaque_still_work(client, settings, kari) -> None:
    from itsdangerous import URLSafeTimedSerializer

    def old_link(purpose: str, email: str) -> str:
        serializer = URLSafeTimedSerializer(settings.secret_key, salt=f"digest.{purpose}")
        return serializer.dumps({"s": kari.id, "e": email})

    assert client.get(f"/innstillinger/{old_link('manage', kari.email)}").status_code == 200
    # The address must still be the row's: a reused id does not open someone else's page.
    assert (
        client.get(f"/avmelding/{old_link('unsubscribe', 'other@kommune.no')}").status_code == 400
    )
    # One purpose's old link is not another's.
    assert client.post(f"/avmelding/{old_link('manage', kari.email)}").status_code == 400
    assert client.post(f"/avmelding/{old_link('unsubscribe', kari.email)}").status_code == 200
    assert status_of(settings, kari.id).status == "unsubscribed"
