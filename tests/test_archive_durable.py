"""The archive outlives the delivery rows: a run's page, its place in the listing and the
feed, and the announcements it carried stay after the retention sweep deleted every
delivery of it (the mails link to that page for ever)."""

from __future__ import annotations

from datetime import timedelta

import feedparser
import httpx
from sqlalchemy import func, select

from digest.core.db import session_scope
from digest.core.models import AnnouncementReceipt, Delivery
from digest.core.settings import Settings
from digest.delivery import retention
from tests.test_archive import (  # noqa: F401  (the `world` fixture)
    World,
    run_links,
    text_of,
    world,
)


def sweep_past_retention(settings: Settings, world: World) -> None:
    """Run the sweep's deletion, as the sweep runs it, a day past the daily run's retention."""
    now = world.daily.end + timedelta(days=settings.delivery_retention_days + 1)
    while True:
        with session_scope(settings.database_url) as session:
            if not retention.delete_old_deliveries(
                session, now, settings.delivery_retention_days, limit=2
            ):
                break
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        receipts = session.scalars(select(AnnouncementReceipt)).all()
        assert receipts and all(r.delivery_id is None for r in receipts)


def test_a_run_stays_in_the_archive_after_its_deliveries_are_deleted(
    client: httpx.Client, settings: Settings, world: World
) -> None:
    before = {
        path: text_of(client.get(path).text)
        for path in ("/arkiv", world.daily_path, world.daily_path + "?rolle=krisesenter")
    }
    feed_before = feedparser.parse(client.get("/arkiv/feed.atom").content)
    sweep_past_retention(settings, world)
    listing = client.get("/arkiv")
    assert run_links(listing.text) == [world.daily_path, world.weekly_path]
    assert "3 nye artikler, 1 oppdatert artikkel, 1 kunngjøring" in text_of(listing.text)
    page = client.get(world.daily_path)
    assert page.status_code == 200
    assert "Fagdag om vold" in text_of(page.text)
    role = client.get(world.daily_path, params={"rolle": "krisesenter"})
    assert "Kun for krisesentre" in text_of(role.text)
    assert client.get(world.weekly_path).status_code == 200
    # Nothing the pages show changed, and an announcement is still found by its title.
    for path, text in before.items():
        assert text_of(client.get(path).text) == text, path
    assert run_links(client.get("/arkiv", params={"q": "fagdag"}).text) == [world.daily_path]
    # The feed keeps its entries and their dates.
    feed = feedparser.parse(client.get("/arkiv/feed.atom").content)
    assert not feed.bozo
    assert [(e.id, e.published) for e in feed.entries] == [
        (e.id, e.published) for e in feed_before.entries
    ]
    assert len(feed.entries) == 2
    # The run that sent nothing is still not there.
    assert client.get(world.empty_path).status_code == 404
