"""Detected changes for the review tests: two feed sources on a fixture site, one that wants
review before sending (`review = true` in its sources file), collected for real."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from digest.core.db import session_scope
from digest.core.models import Change, Item, Source
from digest.core.settings import Settings
from tests.support.collecting import collect_key, watch
from tests.support.feeds import rss
from tests.support.site import FixtureSite, Route

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

TOML = """
[topics]
vold = "Vold i nære relasjoner"
barn = "Barn og unge"
krisesenter = "Krisesentertilbudet"

[[source]]
key = "krise"
name = "Krisesenterveilederen"
kind = "feed"
url = "{base}/krise/feed/"
topics = ["krisesenter"]
review = {review}

[[source]]
key = "vold"
name = "Voldsveilederen"
kind = "feed"
url = "{base}/vold/feed/"
topics = ["vold"]
"""


def sources(
    settings: Settings, site: FixtureSite, folder: Path, review: bool = True
) -> dict[str, int]:
    """Write and sync the sources file (the krise source with `review = <review>`)."""
    toml = TOML.format(base=site.base_url, review="true" if review else "false")
    return watch(settings, folder / "review.toml", toml)


def publish(site: FixtureSite, key: str, titles: list[str], at: datetime = AT) -> None:
    """The source's feed now lists these articles, published an hour apart before `at`."""
    site.routes[f"/{key}/feed/"] = Route(
        rss(
            key,
            site.url(f"/{key}/"),
            [
                {
                    "title": title,
                    "link": site.url(f"/{key}/{n}/"),
                    "published": at - timedelta(hours=n + 1),
                    "summary": f"Om {title}",
                }
                for n, title in enumerate(titles)
            ],
        )
    )


def changes_of(settings: Settings, key: str) -> list[Change]:
    """The source's changes, oldest first (detached: read their columns only)."""
    with session_scope(settings.database_url) as session:
        rows = session.scalars(
            select(Change)
            .join(Item, Change.item_id == Item.id)
            .join(Source, Item.source_id == Source.id)
            .where(Source.key == key)
            .order_by(Change.detected_at, Change.id)
        ).all()
        session.expunge_all()
        return list(rows)


def detected(
    settings: Settings, site: FixtureSite, folder: Path, at: datetime = AT
) -> dict[str, list[int]]:
    """Two changes of each source, collected for real: vold's at `at`, krise's (waiting for
    review) an hour later; the ids of each source's changes, oldest first."""
    sources(settings, site, folder)
    publish(site, "vold", ["Ny veileder om partnervold", "Rutiner for avdekking"], at)
    publish(site, "krise", ["Krisesentertilbudet for menn", "Botilbud etter opphold"], at)
    assert collect_key(settings, "vold", at).ok
    assert collect_key(settings, "krise", at + timedelta(hours=1)).ok
    return {key: [c.id for c in changes_of(settings, key)] for key in ("krise", "vold")}
