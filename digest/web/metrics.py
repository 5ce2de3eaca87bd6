"""GET /metrics: the service's state in the Prometheus text format, for operators' dashboards."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from digest.db import session_scope
from digest.status import ServiceStatus, current_status

router = APIRouter()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(status: ServiceStatus) -> str:
    lines: list[str] = []

    def family(
        name: str, help_text: str, samples: dict[str, float] | float, label: str = ""
    ) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        if isinstance(samples, dict):
            for key, value in sorted(samples.items()):
                lines.append(f'{name}{{{label}="{_label(key)}"}} {value:g}')
        else:
            lines.append(f"{name} {samples:g}")

    family(
        "digest_sources", "Enabled sources by health status.", status.sources_by_status, "status"
    )
    family(
        "digest_source_consecutive_failures",
        "Failed collections in a row, per source.",
        {k: float(v) for k, v in status.source_failures.items()},
        "source",
    )
    family("digest_subscribers", "Subscribers by status.", status.subscribers_by_status, "status")
    family(
        "digest_deliveries",
        "Deliveries by status, all runs.",
        status.deliveries_by_status,
        "status",
    )
    family("digest_runs_unfinished", "Digest runs not yet complete.", status.runs_unfinished)
    family(
        "digest_last_complete_period_end_seconds",
        "End of the latest completed period, per frequency (Unix time).",
        {k: v.timestamp() for k, v in status.last_run_end.items()},
        "frequency",
    )
    family("digest_items", "Items (articles and sections) known.", status.items)
    family("digest_changes", "Changes (new and updated) recorded.", status.changes)
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    with session_scope(request.app.state.settings.database_url) as session:
        status = current_status(session)
    return PlainTextResponse(exposition(status), media_type="text/plain; version=0.0.4")
