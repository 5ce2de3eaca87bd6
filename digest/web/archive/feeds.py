"""Atom feeds (feedgen): the archive (one entry per sent run, linking to its page), and
the sendable changes per topic and per source (the latest 50, newest first), for feed
readers and intranets that poll cheaply with conditional GET (see `conditional`).

Feed titles follow `?lang=` (bokmål by default); titles and summaries of the sites'
articles stay as the sites wrote them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]
from starlette.responses import PlainTextResponse, Response

from digest import SERVICE_NAME
from digest.core import i18n
from digest.core.archive_links import PREFIX, digest_url
from digest.core.i18n import translate
from digest.core.topics import topic_labels
from digest.web.archive import queries
from digest.web.archive.conditional import cached_response
from digest.web.archive.params import topics_of
from digest.web.archive.text import shown_text
from digest.web.archive.views import period_text, run_title
from digest.web.common import DbSession

router = APIRouter()

ATOM = "application/atom+xml; charset=utf-8"
LATEST = 50  # changes in a topic's or source's feed
LATEST_RUNS = 30  # runs in the archive's feed
# Characters XML 1.0 cannot hold (a site's title may carry them): dropped from feed text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# When a feed has no entries yet: a fixed time, so that its ETag stays put.
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
KIND_LABELS = {"new": i18n.N_("Ny"), "updated": i18n.N_("Oppdatert")}


def xml_text(value: str | None) -> str:
    return _NOT_XML.sub("", value or "")


def asked_language(request: Request) -> str:
    """The language `?lang=` asked for (the first valid one, as every page reads it), or
    "" when none was: links then carry no `lang`."""
    if getattr(request.state, "language_asked", False):
        return i18n.language_or_default(getattr(request.state, "language", None))
    return ""


def feed_language(request: Request) -> str:
    """Only `?lang=` chooses a feed's language: a feed reader's cookies and headers do not."""
    return asked_language(request) or i18n.language_or_default(None)


def _feed(request: Request, title: str, page_url: str, language: str) -> FeedGenerator:
    base = request.app.state.settings.base_url.rstrip("/")
    self_url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    feed = FeedGenerator()
    feed.id(base + request.url.path)  # the same feed in every language
    feed.title(xml_text(title))
    feed.author(name=SERVICE_NAME)
    feed.link(href=self_url, rel="self", type="application/atom+xml")
    feed.link(href=base + page_url, rel="alternate", type="text/html")
    feed.language(language)
    return feed


def _tag(request: Request, at: datetime, what: str) -> str:
    """An entry id for good (RFC 4151): the service's host, the entry's year, its key."""
    host = urlsplit(request.app.state.settings.base_url).hostname or "localhost"
    return f"tag:{host},{at.astimezone(UTC).year}:{what}"


def _answer(request: Request, feed: FeedGenerator, newest: datetime | None) -> Response:
    feed.updated(newest or _EPOCH)
    return cached_response(request.headers, feed.atom_str(pretty=True), ATOM, newest)


def _not_found(language: str, message: str) -> Response:
    return PlainTextResponse(translate(language, message), status_code=404)


@router.get(f"{PREFIX}/feed.atom")
def archive_feed(request: Request, session: DbSession) -> Response:
    """The latest sent runs (narrowed to `tema` when asked), each linking to its page."""
    language = feed_language(request)
    tz = request.app.state.settings.tz
    topics = topics_of(request.query_params, topic_labels(session))
    runs, _ = queries.sent_runs(session, queries.RunFilter(topics=topics), limit=LATEST_RUNS)
    base = request.app.state.settings.base_url
    shown_language = asked_language(request)
    title = translate(language, "Veiledervarsel: arkiv over utsendte oversikter")
    feed = _feed(request, title, PREFIX, language)
    newest: datetime | None = None
    for run in runs:
        at = run.first_sent_at or run.period_end
        newest = max(newest or at, at)
        url = digest_url(
            base, run.frequency, run.period_start, topics=topics, language=shown_language
        )
        entry = feed.add_entry(order="append")
        entry.id(digest_url(base, run.frequency, run.period_start))
        entry.title(run_title(run, tz, language))
        entry.link(href=url, rel="alternate", type="text/html")
        entry.published(at)
        entry.updated(at)
        entry.summary(
            translate(language, "Perioden %(period)s.") % {"period": period_text(run, tz, language)}
        )
    # Which runs are listed follows the editors too (a hidden change can leave a topic's
    # run with nothing to show; a withdrawn announcement leaves its run's list).
    edited = queries.archive_edited(session, topics)
    return _answer(request, feed, max((t for t in (newest, edited) if t), default=None))


def latest_time(changes: list[queries.FeedChange], edited: datetime | None) -> datetime | None:
    """The Last-Modified of a list of `changes`: the newest one's release, or the last
    edit of the changes in scope (`queries.last_edited`) if later."""
    times = [t for t in (changes[0].released_at if changes else None, edited) if t is not None]
    return max(times, default=None)


def _changes_feed(
    request: Request,
    feed: FeedGenerator,
    changes: list[queries.FeedChange],
    language: str,
    edited: datetime | None,
) -> Response:
    for change in changes:
        entry = feed.add_entry(order="append")
        entry.id(_tag(request, change.released_at, f"endring/{change.change_id}"))
        entry.title(xml_text(change.title))
        if change.url:  # only an http(s) address (see `text.shown_link`) is a link
            entry.link(href=change.url, rel="alternate", type="text/html")
        entry.updated(change.released_at)
        entry.published(change.published_at or change.released_at)
        entry.author(name=xml_text(change.source_name))
        label = KIND_LABELS.get(change.kind, KIND_LABELS["updated"])
        entry.category(term=change.kind, label=translate(language, label))
        parts = []
        if change.editor_note:
            parts.append(
                translate(language, "Redaksjonens merknad: %(note)s") % {"note": change.editor_note}
            )
        parts += [change.note, change.summary]
        summary = xml_text("\n\n".join(p for p in parts if p))
        if summary:
            entry.summary(summary)
        if not change.url:  # Atom wants content in an entry with no link
            entry.content(summary or xml_text(change.title), type="text")
    return _answer(request, feed, latest_time(changes, edited))


@router.get("/endringer/tema/{topic}.atom")
def topic_feed(topic: str, request: Request, session: DbSession) -> Response:
    language = feed_language(request)
    labels = topic_labels(session)
    if topic not in labels:
        return _not_found(language, i18n.N_("Fant ikke dette temaet."))
    title = translate(language, "Veiledervarsel: nytt og endret om %(topic)s") % {
        "topic": shown_text(labels[topic])
    }
    feed = _feed(request, title, f"{PREFIX}?tema={topic}", language)
    sources = queries.source_ids(session, [topic])
    changes = queries.latest_changes(session, sources, LATEST)
    edited = queries.last_edited(session, sources)
    return _changes_feed(request, feed, changes, language, edited)


@router.get("/endringer/kilde/{key}.atom")
def source_feed(key: str, request: Request, session: DbSession) -> Response:
    language = feed_language(request)
    source = queries.source_of(session, key)
    if source is None:
        return _not_found(language, i18n.N_("Fant ikke denne kilden."))
    title = translate(language, "Veiledervarsel: nytt og endret hos %(source)s") % {
        "source": shown_text(source.name)
    }
    feed = _feed(request, title, PREFIX, language)
    changes = queries.latest_changes(session, [source.id], LATEST)
    edited = queries.last_edited(session, [source.id])
    return _changes_feed(request, feed, changes, language, edited)
