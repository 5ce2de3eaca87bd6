"""`digest run`, `digest web` and `digest scheduler`: the long-running processes."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from digest.commands.common import current_settings, fail, migrating, require_current_schema
from digest.commands.sources import sync_sources_file
from digest.core.logs import configure_logging
from digest.core.settings import Settings


@click.command()
@click.option("--host", default=None, help="Address to listen on (DIGEST_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on (DIGEST_PORT).")
def run(host: str | None, port: int | None) -> None:
    """Run web app, scheduler and a worker in one process (the embedded default)."""
    import dramatiq
    import uvicorn

    from digest.core.migrate import upgrade
    from digest.scheduler import Scheduler
    from digest.web.app import create_app

    settings = current_settings()
    configure_logging(settings)
    with migrating():
        upgrade(settings.database_url)
    sync_sources_file(settings, allow_empty=False, refused_is_fatal=False)
    from digest import actors

    worker = dramatiq.Worker(actors.broker, worker_threads=2)
    worker.start()
    scheduler = Scheduler(settings, actors.ActorEnqueuer())
    thread = threading.Thread(target=scheduler.run_forever, name="scheduler", daemon=True)
    thread.start()
    click.echo(_banner(settings, host, port))
    if not _has_editors(settings):
        click.echo(
            "no editors yet: `digest editors add you@example.no --role admin` makes the first, "
            "who signs in at /redaksjon"
        )
    try:
        uvicorn.run(
            # «Check now» and «retry failed» go to the worker above, through the broker.
            create_app(settings, jobs=actors.ActorJobs()),
            host=host or settings.host,
            port=port or settings.port,
            log_level="info",
            log_config=_uvicorn_logging(settings),
        )
    finally:
        scheduler.stop()
        thread.join(timeout=5)
        worker.stop(timeout=10_000)
        click.echo("stopped")


def _uvicorn_logging(settings: Settings) -> dict[str, Any] | None:
    """uvicorn's own log set-up for text; for JSON none, so that its lines go to the root
    logger's JSON handler like all others."""
    from uvicorn.config import LOGGING_CONFIG

    return None if settings.log_format == "json" else LOGGING_CONFIG


def _has_editors(settings: Settings) -> bool:
    from sqlalchemy import select

    from digest.core.db import session_scope
    from digest.core.models import Editor

    with session_scope(settings.database_url) as session:
        return session.scalar(select(Editor.id).limit(1)) is not None


def _banner(settings: Settings, host: str | None, port: int | None) -> str:
    """Where the embedded service listens, what it stores in and where its mail goes."""
    mail = (
        settings.smtp_url.split("@")[-1] if settings.smtp_url else f"outbox {settings.outbox_dir}"
    )
    return (
        f"Veiledervarsel on http://{host or settings.host}:{port or settings.port} "
        f"(database {settings.database_url.split('://')[0]}, mail to {mail}); Ctrl-C stops"
    )


@click.command()
@click.option("--host", default=None, help="Address to listen on (DIGEST_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on (DIGEST_PORT or $PORT).")
def web(host: str | None, port: int | None) -> None:
    """Serve the web app only (the Procfile's web process)."""
    import uvicorn

    from digest.web.app import create_app
    from digest.web.jobs import Jobs

    settings = current_settings()
    configure_logging(settings)
    require_current_schema(settings)
    # On the in-memory broker no worker could take the jobs: the app does them itself.
    jobs: Jobs | None = None
    if not settings.broker_url.startswith("memory"):
        # Importing the actors sets the broker from DIGEST_BROKER_URL: the one the
        # Procfile's workers read.
        from digest import actors

        jobs = actors.ActorJobs()
    uvicorn.run(
        create_app(settings, jobs=jobs),
        host=host or settings.host,
        port=port or settings.port,
        proxy_headers=True,
        log_config=_uvicorn_logging(settings),
    )


@click.command()
def scheduler() -> None:
    """Enqueue due collections and digest runs for the workers (the Procfile's scheduler)."""
    from digest import actors
    from digest.scheduler import Scheduler

    settings = current_settings()
    configure_logging(settings)
    if settings.broker_url.startswith("memory"):
        fail(
            "the scheduler needs a shared broker (DIGEST_BROKER_URL=redis://… or amqp://…); "
            "on the embedded default use `digest run`"
        )
    require_current_schema(settings)
    loop = Scheduler(settings, actors.ActorEnqueuer())
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        loop.stop()
