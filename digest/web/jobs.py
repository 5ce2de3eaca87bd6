"""How the web hands work to the workers: collect a source now, deliver a chunk of a run,
send notices (the confirmations of an imported roster).

The web may not import the actors (the rooms point down), so it asks through `Jobs`, which
`create_app` is given: `digest run` and `digest web` give the actors' implementation
(`digest.actors.ActorJobs`, which sends messages to the broker), and an app made without
one (tests, an embedded app with no worker) does the work in its own process.

Either way a route calls a job only after its unit of work has committed, through
FastAPI's background tasks, which run after the response and so after the `DbSession`
commit (enqueue after commit): `later(tasks, request).collect_now(source_id)`.
"""

from __future__ import annotations

import logging
from typing import Protocol

from fastapi import BackgroundTasks, Request

from digest.core.db import get_sessionmaker
from digest.core.settings import Settings
from digest.delivery import digests, notices
from digest.mail.pool import send_pool
from digest.watch.collect import collect_by_id, sessions_for
from digest.watch.fetch import make_fetcher
from subscribers.base import utcnow

log = logging.getLogger(__name__)


class Jobs(Protocol):
    """Work the web asks for; each call is made after the rows it names are committed."""

    def collect_now(self, source_id: int) -> None:
        """Collect one source now, whatever its next check says."""
        ...

    def deliver(self, run_id: int, subscriber_ids: list[int]) -> None:
        """Deliver the digests of run `run_id` still owed to `subscriber_ids`."""
        ...

    def send_notices(self, notice_ids: list[int]) -> None:
        """Send the notices `notice_ids` still owed."""
        ...


class InProcessJobs:
    """The jobs done here, in the web process, for an app with no worker queue.

    Called from a background task (a thread of the server's pool, after the response),
    they do what the actors do. Nothing raised leaves them: a collection records its
    failure in the source's health, a delivery in the delivery's row, and anything else
    is logged; the recovery sweep still owes what the database says is unfinished.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect_now(self, source_id: int) -> None:
        settings = self.settings
        try:
            with make_fetcher(settings) as fetcher:
                collect_by_id(
                    source_id,
                    utcnow(),
                    sessions=sessions_for(settings.database_url),
                    fetcher=fetcher,
                    settings=settings,
                )
        except Exception:
            log.exception("collecting source %s failed", source_id)

    def deliver(self, run_id: int, subscriber_ids: list[int]) -> None:
        settings = self.settings
        try:
            report = digests.deliver_chunk(
                get_sessionmaker(settings.database_url),
                send_pool(settings),
                settings,
                run_id,
                subscriber_ids,
            )
        except Exception:
            log.exception("delivering %s digest(s) of run %s failed", len(subscriber_ids), run_id)
            return
        log.info("run %s: %s", run_id, report.summary())

    def send_notices(self, notice_ids: list[int]) -> None:
        settings = self.settings
        try:
            notices.send_notices(
                get_sessionmaker(settings.database_url),
                send_pool(settings),
                settings,
                notice_ids,
            )
        except Exception:
            log.exception("sending %s notice(s) failed", len(notice_ids))


def jobs_of(request: Request) -> Jobs:
    """The app's jobs (`app.state.jobs`), or in-process ones when it was given none."""
    jobs: Jobs | None = getattr(request.app.state, "jobs", None)
    return jobs if jobs is not None else InProcessJobs(request.app.state.settings)


class Later:
    """The app's jobs, called once the request's unit of work has committed."""

    def __init__(self, tasks: BackgroundTasks, jobs: Jobs) -> None:
        self.tasks = tasks
        self.jobs = jobs

    def collect_now(self, source_id: int) -> None:
        self.tasks.add_task(self.jobs.collect_now, source_id)

    def deliver(self, run_id: int, subscriber_ids: list[int]) -> None:
        self.tasks.add_task(self.jobs.deliver, run_id, list(subscriber_ids))

    def send_notices(self, notice_ids: list[int]) -> None:
        self.tasks.add_task(self.jobs.send_notices, list(notice_ids))


def later(tasks: BackgroundTasks, request: Request) -> Later:
    return Later(tasks, jobs_of(request))
