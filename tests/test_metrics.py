"""GET /metrics: every figure reads back exactly through a Prometheus parser."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from digest.core.db import session_scope
from digest.core.models import DigestRun, RunStatus
from digest.core.settings import Settings
from digest.delivery.status import ServiceStatus
from digest.web.app import create_app
from digest.web.metrics import exposition
from tests.support.server import LiveServer

README_FAMILIES = {
    "digest_sources": ("status",),
    "digest_source_consecutive_failures": ("source",),
    "digest_subscribers": ("status",),
    "digest_deliveries": ("status",),
    "digest_runs_unfinished": (),
    "digest_last_complete_period_end_seconds": ("frequency",),
    "digest_items": (),
    "digest_changes": (),
    "digest_changes_by_review": ("review",),
    "digest_sources_paused": (),
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_period_end_reads_back_to_the_second(settings: Settings) -> None:
    end = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    with session_scope(settings.database_url) as session:
        session.add_all(
            [
                DigestRun(
                    frequency="daily",
                    period_start=datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
                    period_end=end,
                    status=RunStatus.COMPLETE.value,
                ),
                DigestRun(
                    frequency="daily",
                    period_start=end,
                    period_end=datetime(2026, 11, 28, 7, 0, tzinfo=UTC),
                    status=RunStatus.RUNNING.value,
                ),
            ]
        )
    server = LiveServer(create_app(settings)).start()
    try:
        response = server.client().get("/metrics")
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    figures = samples(response.text)
    period_end = figures[("digest_last_complete_period_end_seconds", (("frequency", "daily"),))]
    assert period_end == 1795762800 == end.timestamp()
    assert figures[("digest_runs_unfinished", ())] == 1
    assert {name for name, _labels in figures} >= set(README_FAMILIES) - {
        # No sources, subscribers or deliveries yet: families without samples.
        "digest_sources",
        "digest_source_consecutive_failures",
        "digest_subscribers",
        "digest_deliveries",
        "digest_changes_by_review",
    }


def test_large_counts_are_exact() -> None:
    status = ServiceStatus(
        sources_by_status={"ok": 12, "failing": 1},
        source_failures={"bufdir": 1_000_001, 'odd"key\\': 3},
        subscribers_by_status={"active": 1_234_567, "pending": 7},
        deliveries_by_status={"sent": 987_654_321},
        runs_unfinished=2,
        last_run_end={"weekly": datetime(2026, 11, 23, 7, 0, tzinfo=UTC)},
        items=1_234_567,
        changes=123_456_789,
        changes_by_review={"auto": 123_456_000, "waiting": 789},
        sources_paused=1,
    )
    text = exposition(status).decode()
    figures = samples(text)
    assert figures[("digest_items", ())] == 1_234_567
    assert figures[("digest_changes", ())] == 123_456_789
    assert figures[("digest_changes_by_review", (("review", "waiting"),))] == 789
    assert figures[("digest_sources_paused", ())] == 1
    assert figures[("digest_subscribers", (("status", "active"),))] == 1_234_567
    assert figures[("digest_deliveries", (("status", "sent"),))] == 987_654_321
    assert figures[("digest_source_consecutive_failures", (("source", "bufdir"),))] == 1_000_001
    assert figures[("digest_source_consecutive_failures", (("source", 'odd"key\\'),))] == 3
    assert figures[("digest_sources", (("status", "failing"),))] == 1
    assert figures[("digest_runs_unfinished", ())] == 2
    assert figures[("digest_last_complete_period_end_seconds", (("frequency", "weekly"),))] == (
        1795417200
    )
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, labels in README_FAMILIES.items():
        assert families[name].type == "gauge"
        assert all(tuple(s.labels) == labels for s in families[name].samples), name
