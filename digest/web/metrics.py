"""GET /metrics: the service's state in the Prometheus text format, for operators' dashboards.

The figures come from the database and the broker's queues on each scrape; prometheus_client
writes them out, exactly. The workers' own figures (send latency, mails by outcome) are served
by the workers (digest.core.broker.WorkerProcess), or here when the worker runs in this
process on the in-memory broker.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from digest.core.broker import queue_depths
from digest.core.instruments import INSTRUMENTS
from digest.delivery.status import ServiceStatus, current_status
from digest.web.common import DbSession

router = APIRouter()


class StatusCollector(Collector):
    """Gauges of one ServiceStatus and of the queues, read once per scrape."""

    def __init__(self, status: ServiceStatus, queues: Mapping[str, int]) -> None:
        self.status = status
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
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
        yield _labelled(
            "digest_changes_by_source",
            "Changes recorded, per source.",
            "source",
            s.changes_by_source,
        )
        yield _labelled(
            "digest_latest_run_sending_seconds",
            "Seconds from the start of the latest run to its last mail sent so far, per frequency.",
            "frequency",
            s.latest_run_sending_seconds,
        )
        yield from self._relay_and_queues()

    def _relay_and_queues(self) -> Iterator[Metric]:
        s = self.status
        paused_until = s.relay.paused_until
        yield GaugeMetricFamily(
            "digest_relay_paused",
            "1 while sending is paused because the relay fails, else 0.",
            value=int(paused_until is not None),
        )
        until = GaugeMetricFamily(
            "digest_relay_paused_until_seconds",
            "When the pause of sending ends (Unix time); no sample when not paused.",
        )
        if paused_until is not None:
            until.add_metric([], paused_until.timestamp())
        yield until
        yield CounterMetricFamily(
            "digest_relay_pauses",
            "Times sending paused because the relay failed, since the service began.",
            value=s.relay.pauses,
        )
        yield GaugeMetricFamily(
            "digest_relay_failures_in_row",
            "Failures in a row against the relay, as the workers last recorded.",
            value=s.relay.failures_in_row,
        )
        yield _labelled(
            "digest_queue_messages",
            "Messages waiting per broker queue (name.DQ: delayed and retries; name.XQ: dead).",
            "queue",
            self.queues,
        )


def _labelled(
    name: str, help_text: str, label: str, values: Mapping[str, float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def exposition(
    status: ServiceStatus, queues: Mapping[str, int] | None = None, workers_here: bool = False
) -> bytes:
    # A registry per scrape: nothing of one request's figures outlives it.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status, queues or {}))
    if workers_here:
        for instrument in INSTRUMENTS:
            registry.register(instrument)
    return generate_latest(registry)


@router.get("/metrics")
def metrics(request: Request, session: DbSession) -> Response:
    broker_url = request.app.state.settings.broker_url
    # The broker first: no transaction is open yet while it is asked.
    queues = queue_depths(broker_url)
    status = current_status(session)
    workers_here = broker_url.startswith("memory")
    return Response(exposition(status, queues, workers_here), media_type=CONTENT_TYPE_LATEST)
