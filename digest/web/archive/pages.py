"""The public archive's pages: the sent runs (all, or one frequency's), narrowed by topic
and searched by title, a page at a time; and one run's digest as a reader with the
address's topics and role got it. Nothing on them names a subscriber."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from digest.core.archive_links import (
    FREQUENCY_OF_SLUG,
    PREFIX,
    SLUGS,
    TOPIC_PARAM,
    parse_period_key,
)
from digest.core.i18n import translate
from digest.core.roles import audiences_for
from digest.core.topics import topic_labels
from digest.mail.render import announcement_html
from digest.web.archive import queries
from digest.web.archive.feeds import asked_language
from digest.web.archive.params import (
    FREQUENCY_PARAM,
    MAX_SEARCH,
    PAGE_PARAM,
    SEARCH_PARAM,
    ArchiveQuery,
    BadQuery,
    archive_query,
    municipality_of,
    narrowed_of,
    role_of,
    topics_of,
)
from digest.web.archive.views import entries, path_with, period_text, reader, run_digest, run_title
from digest.web.common import DbSession, frequency_labels, page, role_labels, topics
from digest.web.language import page_language
from subscribers.models import Frequency

router = APIRouter()

PAGE_SIZE = 20


def _refused(request: Request, error: BadQuery) -> HTMLResponse:
    language = page_language(request)
    message = translate(language, error.message) % {"max": MAX_SEARCH}
    return page(
        request,
        "archive/message.html",
        status=400,
        title=translate(language, "Vi forsto ikke søket"),
        message=message,
    )


def not_found(request: Request) -> HTMLResponse:
    language = page_language(request)
    return page(
        request,
        "archive/message.html",
        status=404,
        title=translate(language, "Fant ikke siden"),
        message=translate(
            language, "Det finnes ingen utsendt oversikt på denne adressen. Se arkivet for alle."
        ),
    )


def _page_url(path: str, query: ArchiveQuery, number: int, asked: str) -> str:
    pairs = [(TOPIC_PARAM, t) for t in query.topics]
    if query.frequency is not None and path == PREFIX:
        pairs.append((FREQUENCY_PARAM, SLUGS[query.frequency]))
    if query.search:
        pairs.append((SEARCH_PARAM, query.search))
    if number > 1:
        pairs.append((PAGE_PARAM, str(number)))
    if asked:  # kept for a browser that refuses the cookie
        pairs.append(("lang", asked))
    return f"{path}?{urlencode(pairs)}" if pairs else path


def _listing(request: Request, session: DbSession, frequency: Frequency | None) -> HTMLResponse:
    labels = topic_labels(session)
    try:
        query = archive_query(request.query_params, labels)
    except BadQuery as error:
        return _refused(request, error)
    if frequency is not None:
        query = replace(query, frequency=frequency)
    language, asked = page_language(request), asked_language(request)
    settings = request.app.state.settings
    wanted = queries.RunFilter(query.frequency, query.topics, query.search)
    runs, total = queries.sent_runs(
        session, wanted, limit=PAGE_SIZE, offset=(query.page - 1) * PAGE_SIZE
    )
    pages = max(1, -(-total // PAGE_SIZE))
    if query.page > pages:
        return not_found(request)
    path = request.url.path
    embed_topic = query.topics[0] if query.topics else next(iter(labels), "")
    return page(
        request,
        "archive/index.html",
        lang=language,
        frequency=query.frequency,
        frequency_slug=SLUGS[query.frequency] if query.frequency else "",
        frequencies={SLUGS[f]: label for f, label in frequency_labels(language).items()},
        topics=topics(session),
        query=query,
        entries=entries(session, runs, query.topics, settings.tz, language, asked),
        total=total,
        page_number=query.page,
        pages=pages,
        previous_url=_page_url(path, query, query.page - 1, asked) if query.page > 1 else "",
        next_url=_page_url(path, query, query.page + 1, asked) if query.page < pages else "",
        feed_url=path_with(f"{PREFIX}/feed.atom", query.topics, asked),
        embed_topic=embed_topic,
        embed_label=labels.get(embed_topic, ""),
        base_url=settings.base_url.rstrip("/"),
    )


@router.get(PREFIX, response_class=HTMLResponse)
def archive(request: Request, session: DbSession) -> HTMLResponse:
    return _listing(request, session, None)


@router.get(PREFIX + "/{slug}", response_class=HTMLResponse)
def frequency_archive(slug: str, request: Request, session: DbSession) -> HTMLResponse:
    frequency = FREQUENCY_OF_SLUG.get(slug)
    if frequency is None:
        return not_found(request)
    return _listing(request, session, frequency)


@router.get(PREFIX + "/{slug}/{key}", response_class=HTMLResponse)
def run_page(slug: str, key: str, request: Request, session: DbSession) -> HTMLResponse:
    """One run's digest, as a reader with the address's topics (`tema`) and role (`rolle`)
    got it: announcements for everyone (and for the role), then the changes by resource."""
    frequency, start = FREQUENCY_OF_SLUG.get(slug), parse_period_key(key)
    run = None
    if frequency is not None and start is not None:
        run = queries.sent_run(session, frequency, start)
    if run is None:
        return not_found(request)
    language = page_language(request)
    tz = request.app.state.settings.tz
    labels = topic_labels(session)
    chosen = topics_of(request.query_params, labels)
    role = role_of(request.query_params)
    # With `avgrens=1`, what was made for the role: its audiences narrow the changes, as
    # the mails of a reader who asked for «only what is made for my role» are narrowed;
    # without, the role brings its announcements only, as it does in a mail.
    narrowed = bool(role) and narrowed_of(request.query_params)
    audiences = audiences_for(session, role) if narrowed else ()
    municipality = municipality_of(request.query_params)
    digest = run_digest(session, run, reader(run, chosen, language, role, audiences, municipality))
    return page(
        request,
        "archive/run.html",
        lang=language,
        title=run_title(run, tz, language),
        period=period_text(run, tz, language),
        digest=digest,
        bodies={a.announcement_id: announcement_html(a.body) for a in digest.announcements},
        topics=topics(session),
        chosen=chosen,
        chosen_labels=[labels[t] for t in chosen],
        role=role,
        narrowed=narrowed,
        roles=role_labels(language),
        frequency_path=f"{PREFIX}/{slug}",
        frequency_label=frequency_labels(language)[run.frequency],
        whole_url=request.url.path,
        has_filters=bool(chosen or role),
    )
