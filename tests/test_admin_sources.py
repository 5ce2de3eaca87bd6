"""The admins' sources page: health of each source, «check now» (collected by the app's
in-process jobs, or by the scheduler if the job is lost), pause and resume (a paused
source is not collected), and review before sending; every action audited."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import AuditEntry, Item, Source, SourceStatus
from digest.core.settings import Settings
from digest.watch.selection import due_source_ids, lease_due_sources, sources_to_collect
from digest.watch.sources import load_sources, sync_sources
from subscribers.base import utcnow
from tests.support import command
from tests.support.feeds import rss
from tests.support.server import csrf
from tests.support.site import FixtureSite, Route

PAGE = "/redaksjon/kilder"


@pytest.fixture
def synced(settings: Settings) -> dict[str, int]:
    with session_scope(settings.database_url) as session:
        sync_sources(session, load_sources(settings.sources_file))
        return {s.key: s.id for s in session.scalars(select(Source))}


def feed(site: FixtureSite, n: int = 2) -> bytes:
    now = datetime.now(UTC)
    return rss(
        "RVTS Test",
        site.url("/"),
        [
            {
                "title": f"Sak {i}",
                "link": site.url(f"/aktuelt/{i}/"),
                "published": now - timedelta(hours=i + 1),
            }
            for i in range(n)
        ],
    )


def post(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf(client, PAGE), **data})


def source(settings: Settings, source_id: int) -> Source:
    with session_scope(settings.database_url) as session:
        return session.get_one(Source, source_id)


def actions(settings: Settings) -> list[tuple[str, str, str]]:
    with session_scope(settings.database_url) as session:
        return [
            (e.editor_email, e.action, e.target_id)
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.target_type == "source").order_by(AuditEntry.id)
            )
        ]


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `check` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_the_page_shows_each_sources_health(
    settings: Settings, synced: dict[str, int], admin_client: httpx.Client
) -> None:
    with session_scope(settings.database_url) as session:
        broken = session.get_one(Source, synced["barn-test"])
        broken.status = SourceStatus.FAILING
        broken.http_status = 503
        broken.error = "HTTP 503 <Service Unavailable>"
        broken.consecutive_failures = 3
        broken.warning = "ingen lenker passet mønsteret"
        broken.last_success_at = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
        broken.review_in_file = True
    page = admin_client.get(PAGE)
    assert page.status_code == 200
    text = page.text
    assert "RVTS Test" in text and "rvts-test" in text and "Barnesiden" in text
    assert 'class="badge failing">Feiler' in text
    assert "HTTP 503 &lt;Service Unavailable&gt;" in text  # escaped, with the status
    assert "(HTTP 503)" in text
    assert "Advarsel: ingen lenker passet mønsteret" in text
    assert "20.11.2026 kl. 09.30" in text  # last success, in Oslo time
    assert 'data-label="Feil på rad">3<' in text
    assert "som i kildefilen" in text
    assert text.count('action="/redaksjon/kilder/') == 2 * 3  # review, check, pause each


def test_editors_may_not_see_or_touch_sources(
    settings: Settings, synced: dict[str, int], editor_client: httpx.Client
) -> None:
    assert editor_client.get(PAGE).status_code == 403
    token = csrf(editor_client, "/redaksjon/logg-inn")
    answer = editor_client.post(f"{PAGE}/{synced['rvts-test']}/pause", data={"csrf": token})
    assert answer.status_code == 403
    assert source(settings, synced["rvts-test"]).paused_at is None


def test_a_paused_source_is_not_collected_until_resumed(
    settings: Settings, synced: dict[str, int], admin_client: httpx.Client
) -> None:
    rvts = synced["rvts-test"]
    answer = post(admin_client, f"{PAGE}/{rvts}/pause")
    assert answer.status_code == 303 and answer.headers["location"] == f"{PAGE}?melding=pause"
    assert "satt på pause" in admin_client.get(answer.headers["location"]).text
    assert source(settings, rvts).paused_at is not None
    later = utcnow() + timedelta(days=2)
    with session_scope(settings.database_url) as session:
        assert due_source_ids(session, later) == [synced["barn-test"]]
        assert lease_due_sources(session, later) == [synced["barn-test"]]
        assert [s.id for s in sources_to_collect(session)] == [synced["barn-test"]]
        # Named by key, a command collects it all the same.
        assert [s.id for s in sources_to_collect(session, "rvts-test")] == [rvts]
    page = admin_client.get(PAGE).text
    assert "På pause siden" in page and "Gjenoppta" in page
    # Pausing twice changes nothing and is not logged twice.
    assert post(admin_client, f"{PAGE}/{rvts}/pause").headers["location"].endswith("uendret")
    answer = post(admin_client, f"{PAGE}/{rvts}/gjenoppta")
    assert answer.headers["location"] == f"{PAGE}?melding=gjenopptatt"
    assert source(settings, rvts).paused_at is None
    with session_scope(settings.database_url) as session:
        assert rvts in due_source_ids(session, utcnow() + timedelta(days=2))
    assert actions(settings) == [
        ("admin@bufdir.no", "source_pause", str(rvts)),
        ("admin@bufdir.no", "source_resume", str(rvts)),
    ]


def test_check_now_collects_the_source(
    settings: Settings, synced: dict[str, int], site: FixtureSite, admin_client: httpx.Client
) -> None:
    site.routes["/feed/"] = Route(feed(site, 3))
    rvts = synced["rvts-test"]
    with session_scope(settings.database_url) as session:  # not due for a long while
        session.get_one(Source, rvts).next_check_at = utcnow() + timedelta(days=1)
    before = utcnow()
    answer = post(admin_client, f"{PAGE}/{rvts}/sjekk")
    assert answer.status_code == 303 and answer.headers["location"] == f"{PAGE}?melding=sjekkes"

    def collected() -> bool:
        with session_scope(settings.database_url) as session:
            checked = session.get_one(Source, rvts).last_checked_at
            items = session.scalar(
                select(func.count()).select_from(Item).where(Item.source_id == rvts)
            )
        return checked is not None and items == 3

    wait_for(collected)
    after = source(settings, rvts)
    assert after.status == SourceStatus.OK and after.last_success_at is not None
    assert after.last_success_at >= before
    # Collected, the source is due again after its interval, not now.
    assert after.next_check_at is not None and after.next_check_at > utcnow()
    page = admin_client.get(PAGE).text
    assert 'data-label="Elementer">3<' in page
    assert actions(settings) == [("admin@bufdir.no", "source_check_now", str(rvts))]


def test_check_now_makes_the_source_due_for_the_scheduler(
    settings: Settings, synced: dict[str, int], admin_client: httpx.Client
) -> None:
    # Even if the job were lost, the scheduler's next round collects it: it is due now.
    rvts = synced["rvts-test"]
    with session_scope(settings.database_url) as session:
        session.get_one(Source, rvts).next_check_at = utcnow() + timedelta(days=1)
        session.get_one(Source, synced["barn-test"]).next_check_at = utcnow() + timedelta(days=1)
    post(admin_client, f"{PAGE}/{rvts}/sjekk")
    with session_scope(settings.database_url) as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "source_check_now"))
        assert entry is not None and entry.before and entry.after
        asked_at = datetime.fromisoformat(str(entry.after["next_check_at"]))
        assert rvts in due_source_ids(session, asked_at)
        assert synced["barn-test"] not in due_source_ids(session, asked_at)


def test_check_now_of_a_source_gone_from_the_file_says_so(
    settings: Settings, synced: dict[str, int], admin_client: httpx.Client
) -> None:
    with session_scope(settings.database_url) as session:
        session.get_one(Source, synced["barn-test"]).enabled = False
    answer = post(admin_client, f"{PAGE}/{synced['barn-test']}/sjekk")
    assert answer.headers["location"] == f"{PAGE}?melding=fjernet"
    page = admin_client.get(answer.headers["location"]).text
    assert "ikke lenger i kildefilen" in page
    assert actions(settings) == []


def test_review_before_sending_is_set_here_or_as_in_the_file(
    settings: Settings, synced: dict[str, int], admin_client: httpx.Client
) -> None:
    rvts = synced["rvts-test"]
    answer = post(admin_client, f"{PAGE}/{rvts}/gjennomgang", review="ja")
    assert answer.headers["location"] == f"{PAGE}?melding=gjennomgang"
    assert source(settings, rvts).review_override is True
    assert source(settings, rvts).review_before_sending
    page = admin_client.get(PAGE).text
    assert "satt her; kildefilen sier nei" in page
    post(admin_client, f"{PAGE}/{rvts}/gjennomgang", review="nei")
    assert source(settings, rvts).review_override is False
    post(admin_client, f"{PAGE}/{rvts}/gjennomgang", review="fil")
    assert source(settings, rvts).review_override is None
    refused = post(admin_client, f"{PAGE}/{rvts}/gjennomgang", review="kanskje\u202e")
    assert refused.status_code == 400 and "gjennomgås før utsending" in refused.text
    assert source(settings, rvts).review_override is None
    with session_scope(settings.database_url) as session:
        logged = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "source_review").order_by(AuditEntry.id)
        ).all()
    assert [(e.before or {}).get("review_override") for e in logged] == [None, True, False]
    assert [(e.after or {}).get("review_override") for e in logged] == [True, False, None]


def test_unknown_or_malformed_source_ids_are_404(
    settings: Settings, synced: dict[str, int], admin_client: httpx.Client
) -> None:
    token = csrf(admin_client, PAGE)
    for target in ["999999", "abc", "1e3", "٣", "-1", "9" * 40]:
        for action in ("sjekk", "pause", "gjenoppta", "gjennomgang"):
            answer = admin_client.post(
                f"{PAGE}/{target}/{action}", data={"csrf": token, "review": "ja"}
            )
            assert answer.status_code == 404, (target, action, answer.status_code)
            assert "Fant ikke kilden" in answer.text


def test_actions_need_the_csrf_field(
    settings: Settings, synced: dict[str, int], admin_client: httpx.Client
) -> None:
    answer = admin_client.post(f"{PAGE}/{synced['rvts-test']}/pause", data={"csrf": "x"})
    assert answer.status_code == 403
    assert source(settings, synced["rvts-test"]).paused_at is None


def test_the_workers_jobs_collect_the_source(
    settings: Settings, synced: dict[str, int], site: FixtureSite
) -> None:
    # What `digest run` and `digest web` hand «check now» to: a message for the workers,
    # here taken by a worker in the same process, as on the embedded default.
    site.routes["/feed/"] = Route(feed(site, 2))
    rvts = synced["rvts-test"]
    code = f"from digest import actors; actors.ActorJobs().collect_now({rvts}); actors.work_here()"
    result = command.run(["-c", code], timeout=60)
    assert result.returncode == 0, result.stderr
    with session_scope(settings.database_url) as session:
        assert session.get_one(Source, rvts).status == SourceStatus.OK
        count = select(func.count()).select_from(Item).where(Item.source_id == rvts)
        assert session.scalar(count) == 2
