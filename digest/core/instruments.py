"""Prometheus instruments the workers update as they send (the web's /metrics reads the
database instead); exposed from worker processes by Dramatiq's Prometheus middleware."""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram, values

SEND_SECONDS = Histogram(
    "digest_send_seconds",
    "Seconds from handing one mail to the relay until it answered.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MAILS = Counter(
    "digest_mails",
    "Mails handed to the relay, by its answer: sent, bounced, deferred (the recipient's "
    "temporary refusal), relay (the relay's or the connection's failure), failed (other).",
    ["outcome"],
)
RELAY_PAUSES = Counter(
    "digest_worker_relay_pauses",
    "Times a worker process paused sending because the relay failed.",
)
INSTRUMENTS = (SEND_SECONDS, MAILS, RELAY_PAUSES)


def count_in_files(directory: str) -> None:
    """Keep this process's figures in prometheus_client's multiprocess files in `directory`,
    where the worker's exposition server sums those of all worker processes.

    prometheus_client picks where values live when a metric is made, from the environment
    at its import; a worker process imports it (with this module) before Dramatiq boots
    it, so the choice is made again here and the instruments above are made anew.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    for metric in INSTRUMENTS:
        if metric._labelnames:
            with metric._lock:
                metric._metrics.clear()  # children are made again, in files, when used
        else:
            metric._metric_init()
