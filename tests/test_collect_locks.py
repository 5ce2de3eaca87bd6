"""No transaction is held across network I/O: on the embedded SQLite database, people can
sign up and digests can be claimed while a slow source is being read.

The source's article page is held by the fixture server until the test lets it go; in
that time a sign-up and a delivery claim, each in its own committed transaction with a
one-second busy timeout, must both go through.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from digest.core.db import session_scope
from digest.core.models import Delivery, DigestRun, Item, MailStatus
from digest.core.settings import Settings
from digest.watch.collect import CollectOutcome
from subscribers.choices import choices
from subscribers.models import Subscriber
from subscribers.signups import add_subscriber, sign_up
from tests.support.collecting import collect_once, watch
from tests.support.site import FixtureSite, Route

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HTML = "text/html; charset=utf-8"
SLOW_PAGE = "/aktuelt/1/sak/"

SOURCES = """
[topics]
vold = "Vold"

[[source]]
key = "slow"
name = "Treg"
kind = "index"
url = "{base}/aktuelt/"
topics = ["vold"]
options = {{ link_pattern = "/aktuelt/\\\\d+/" }}
"""


class GatedRoutes(dict[str, Route]):
    """The fixture site's routes, where one path is answered only once the test says so."""

    def __init__(self, routes: dict[str, Route], gated: str) -> None:
        super().__init__(routes)
        self.gated = gated
        self.arrived = threading.Event()
        self.release = threading.Event()

    def get(self, path: str, default: Route | None = None) -> Route | None:  # type: ignore[override]
        if path == self.gated:
            self.arrived.set()
            self.release.wait(timeout=30)
        return super().get(path, default)


@pytest.fixture
def gate(site: FixtureSite) -> Iterator[GatedRoutes]:
    routes = GatedRoutes(
        {
            "/aktuelt/": Route(
                b'<main><a href="/aktuelt/1/sak/">Sak</a></main>', content_type=HTML
            ),
            SLOW_PAGE: Route(
                b"<html><body><main><h1>Sak</h1><p>Tekst.</p></main></body></html>",
                content_type=HTML,
            ),
        },
        SLOW_PAGE,
    )
    site.routes = routes
    yield routes
    routes.release.set()  # never leave a server thread waiting


@pytest.fixture
def slow_source(settings: Settings, site: FixtureSite, tmp_path: Path) -> int:
    return watch(settings, tmp_path / "slow.toml", SOURCES.format(base=site.base_url))["slow"]


@pytest.fixture
def pending_delivery(settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        kari = add_subscriber(session, "kari@kommune.no", choices(topics=["vold"]), confirmed=True)
        run = DigestRun(frequency="daily", period_start=AT - timedelta(days=1), period_end=AT)
        session.add(run)
        session.flush()
        delivery = Delivery(run_id=run.id, subscriber_id=kari.id)
        session.add(delivery)
        session.flush()
        return delivery.id


def test_sign_up_and_claim_go_through_while_a_slow_source_is_read(
    settings: Settings, gate: GatedRoutes, slow_source: int, pending_delivery: int
) -> None:
    outcomes: list[CollectOutcome | None] = []
    collector = threading.Thread(
        target=lambda: outcomes.append(collect_once(settings, slow_source, AT)), daemon=True
    )
    collector.start()
    try:
        assert gate.arrived.wait(timeout=30), "the collector never asked for the slow page"
        # Writers of their own, as the web app and a worker are, that wait at most a second
        # for a lock (the service's own engine would wait 30 s before failing).
        impatient = create_engine(settings.database_url, connect_args={"timeout": 1})
        with Session(impatient) as session:
            sign_up(session, "ola@kommune.no", choices(topics=["vold"]))
            session.commit()
        with Session(impatient) as session:
            claimed = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == pending_delivery,
                    Delivery.status == MailStatus.PENDING.value,
                )
                .values(status=MailStatus.SENDING.value, claimed_at=AT, attempts=1)
            ).rowcount
            session.commit()
        impatient.dispose()
        assert claimed == 1
    finally:
        gate.release.set()
        collector.join(timeout=30)
    assert outcomes and outcomes[0] is not None and outcomes[0].ok, outcomes
    with session_scope(settings.database_url) as session:
        emails = set(session.scalars(select(Subscriber.email)))
        assert emails == {"kari@kommune.no", "ola@kommune.no"}
        assert session.get_one(Delivery, pending_delivery).status == MailStatus.SENDING.value
        page = session.scalars(select(Item).where(Item.source_id == slow_source)).one()
        assert page.title == "Sak" and page.content_hash is not None
