"""Prometheus instruments the workers update as they send (the web's /metrics reads the
database instead); exposed from worker processes by Dramatiq's Prometheus middleware."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SEND_SECONDS = Histogram(
    "digest_send_seconds",
    "Seconds from handing one mail to the relay until it answered.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MAILS = Counter("digest_mails", "Mails the workers settled, by outcome.", ["outcome"])
RELAY_PAUSES = Counter("digest_relay_pauses", "Times sending paused because the relay failed.")
