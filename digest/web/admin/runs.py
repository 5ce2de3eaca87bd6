"""Digest runs and their deliveries, for admins: counts and progress of each run, one run's
deliveries searched by address and filtered by status with the reason of each failure,
and «retry failed» (`digest.delivery.retry`), whose chunks go to the app's jobs after the
commit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response

from digest.core.i18n import N_, translate, translator
from digest.core.models import DigestRun, MailStatus
from digest.delivery import history, retry
from digest.editors import audit
from digest.web.admin.common import (
    PREFIX,
    AdminOnly,
    NotFound,
    admin_page,
    page_number,
    row_id,
    see_other,
)
from digest.web.common import DbSession, frequency_labels
from digest.web.forms import PostedForm
from digest.web.jobs import later
from digest.web.language import page_language
from subscribers.text import strip_invisible

router = APIRouter(prefix=PREFIX)

PER_PAGE = 50
K = TypeVar("K")

# Messages and labels in bokmål, each shown in the page's language.
MESSAGES = {
    "provd": N_("De feilede utsendelsene er lagt i kø på nytt."),
    "ingen": N_("Ingen feilede utsendelser å prøve på nytt."),
}

RUN_STATUS = {"running": N_("Pågår"), "complete": N_("Ferdig")}
# Why a failed delivery is not retried, by the status of its subscriber now: «%(count)s»
# is how many.
NOT_RETRIED = {
    "unsubscribed": N_("%(count)s som har meldt seg av"),
    "suppressed": N_("%(count)s som er sperret for utsending (adressen avviste e-post)"),
    "pending": N_("%(count)s som ikke har bekreftet abonnementet"),
}
NOT_FOUND = N_("Fant ikke utsendelsen.")


def _translated(lang: str, labels: Mapping[K, str]) -> dict[K, str]:
    return {k: translate(lang, v) for k, v in labels.items()}


def mail_status_labels(lang: str) -> dict[MailStatus, str]:
    """What the pages call each status of a mail, in `lang`."""
    t = translator(lang)
    return {
        MailStatus.PENDING: t.gettext("Venter"),
        # In a context of its own: the editors' pages' «Sendes» is «will be sent».
        MailStatus.SENDING: t.pgettext("e-poststatus", "Sendes"),
        MailStatus.SENT: t.gettext("Sendt"),
        MailStatus.SKIPPED_EMPTY: t.gettext("Ingenting nytt"),
        MailStatus.SKIPPED_INACTIVE: t.gettext("Ikke aktiv lenger"),
        MailStatus.FAILED: t.gettext("Feilet"),
    }


@router.get("/utsendelser")
def runs_page(request: Request, session: DbSession, editor: AdminOnly, side: str = "") -> Response:
    found = history.recent_runs(session, page_number(side[:10]), PER_PAGE)
    lang = page_language(request)
    return admin_page(
        request,
        "runs.html",
        editor,
        section="runs",
        runs=found,
        frequencies=frequency_labels(lang),
        run_status=_translated(lang, RUN_STATUS),
    )


def _run(session: DbSession, value: str) -> DigestRun:
    run = session.get(DigestRun, row_id(value, NotFound(NOT_FOUND)))
    if run is None:
        raise NotFound(NOT_FOUND)
    return run


@router.get("/utsendelser/{run_id}")
def run_page(
    request: Request,
    run_id: str,
    session: DbSession,
    editor: AdminOnly,
    adresse: str = "",
    status: str = "",
    side: str = "",
) -> Response:
    run = _run(session, run_id)
    view = history.run_view(session, run.id)
    assert view is not None
    address = strip_invisible(adresse[:300]).strip()[:254]
    chosen = MailStatus(status) if status in tuple(MailStatus) else None
    found = history.deliveries(
        session,
        run.id,
        address=address,
        statuses=[chosen] if chosen else [],
        page=page_number(side[:10]),
        per_page=PER_PAGE,
    )
    filters = {k: v for k, v in (("adresse", address), ("status", chosen or "")) if v}
    lang = page_language(request)
    return admin_page(
        request,
        "run.html",
        editor,
        section="runs",
        messages=_translated(lang, MESSAGES),
        run=view,
        deliveries=found,
        address=address,
        chosen_status=chosen or "",
        unknown_status=bool(status) and chosen is None,
        retryable=len(retry.retryable(session, run.id)),
        not_retried=[
            translate(lang, NOT_RETRIED[k]) % {"count": n} if k in NOT_RETRIED else f"{n} {k}"
            for k, n in retry.not_retryable(session, run.id).items()
        ],
        frequencies=frequency_labels(lang),
        run_status=_translated(lang, RUN_STATUS),
        mail_status=mail_status_labels(lang),
        previous_url=_page_url(run.id, filters, found.number - 1),
        next_url=_page_url(run.id, filters, found.number + 1),
    )


def _page_url(run_id: int, filters: dict[str, str], number: int) -> str:
    query = {**filters, "side": str(number)} if number > 1 else filters
    return f"{PREFIX}/utsendelser/{run_id}" + ("?" + urlencode(query) if query else "")


@router.post("/utsendelser/{run_id}/prov-igjen")
def retry_failed(
    request: Request,
    run_id: str,
    session: DbSession,
    editor: AdminOnly,
    form: PostedForm,
    tasks: BackgroundTasks,
) -> Response:
    run = _run(session, run_id)
    before = history.run_view(session, run.id)
    assert before is not None
    done = retry.retry_failed(session, run)
    page_url = f"{PREFIX}/utsendelser/{run.id}"
    if not done.retried:
        return see_other(page_url, "ingen")
    audit.record(
        session,
        editor,
        "run_retry",
        "run",
        run.id,
        before={"status": before.status, "failed": before.counts.failed},
        after={
            "status": run.status,
            "retried": done.retried,
            "not_retried": dict(done.left),
        },
    )
    jobs = later(tasks, request)
    for chunk in done.chunks:
        jobs.deliver(run.id, chunk)
    return see_other(page_url, "provd")
