"""GET /metrics: the service's state in the Prometheus text format, for operators' dashboards.

The figures come from the database on each scrape; prometheus_client writes them out, exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from digest.delivery.status import ServiceStatus, current_status
from digest.web.common import DbSession

router = APIRouter()


class StatusCollector(Collector):
    """Gauges of one ServiceStatus, read once per scrape."""

    def __init__(self, status: ServiceStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.status
        yield _labelled(
            "digest_sources", "Enabled sources by health status.", "status", s.sources_by_status
        )
        yield _labelled(
            "digest_source_consecutive_failures",
            "Failed collections in a row, per source.",
            "source",
            s.source_failures,
        )
        yield _labelled(
            "digest_subscribers", "Subscribers by status.", "status", s.subscribers_by_status
        )
        yield _labelled(
            "digest_deliveries", "Deliveries by status, all runs.", "status", s.deliveries_by_status
        )
        yield GaugeMetricFamily(
            "digest_runs_unfinished", "Digest runs not yet complete.", value=s.runs_unfinished
        )
        yield _labelled(
            "digest_last_complete_period_end_seconds",
            "End of the latest completed period, per frequency (Unix time).",
            "frequency",
            {frequency: end.timestamp() for frequency, end in s.last_run_end.items()},
        )
        yield GaugeMetricFamily(
            "digest_items", "Items (articles and sections) known.", value=s.items
        )
        yield GaugeMetricFamily(
            "digest_changes", "Changes (new and updated) recorded.", value=s.changes
        )
        yield _labelled(
            "digest_changes_by_review",
            "Changes by the editors' review (waiting ones are held from every digest).",
            "review",
            s.changes_by_review,
        )
        yield GaugeMetricFamily(
            "digest_sources_paused", "Sources an admin paused.", value=s.sources_paused
        )


def _labelled(
    name: str, help_text: str, label: str, values: Mapping[str, float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def exposition(status: ServiceStatus) -> bytes:
    # A registry per scrape: nothing of one request's figures outlives it.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    return generate_latest(registry)


@router.get("/metrics")
def metrics(session: DbSession) -> Response:
    return Response(exposition(current_status(session)), media_type=CONTENT_TYPE_LATEST)
