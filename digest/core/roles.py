"""What each subscriber role reads: the audiences `digest sources sync` stored for it, the
sources those bring, and who is narrowed to them («Bare det som er laget for min rolle»).
The matching is pure; the readers at the bottom load what it needs in one query each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Audience, RoleAudiences, Source
from subscribers.models import Subscriber


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the pages show of a source when they say which resources a choice brings."""

    key: str
    name: str
    url: str
    topics: tuple[str, ...]
    audiences: tuple[str, ...]


def shares_audience(reader: Iterable[str], source: Iterable[str]) -> bool:
    """Does a reader narrowed to `reader` audiences get a source written for `source`?
    No audiences on the reader: not narrowed, everything. A source that names no audience
    is made for no role in particular, so a narrowed reader does not get it."""
    wanted = set(reader)
    return not wanted or bool(wanted & set(source))


def covers_topics(chosen: Iterable[str], source: Iterable[str]) -> bool:
    """Does a reader who chose `chosen` topics (none: all) get a source on `source` topics?
    As compose decides it: a source that names no topic is for every choice."""
    wanted, has = set(chosen), set(source)
    return not wanted or not has or bool(wanted & has)


def reader_audiences(
    roles: Mapping[str, Sequence[str]], role: str, role_only: bool
) -> tuple[str, ...]:
    """The audiences a reader is narrowed to: their role's, if they asked for only that;
    none (everything) otherwise, or when their role has none."""
    return tuple(roles.get(role, ())) if role_only and role else ()


def audiences_of(roles: Mapping[str, Sequence[str]], subscriber: Subscriber) -> tuple[str, ...]:
    """`reader_audiences` of a subscriber, from a mapping loaded once for many of them."""
    return reader_audiences(roles, subscriber.role or "", bool(subscriber.role_only))


def matching_sources(
    sources: Iterable[SourceInfo], audiences: Sequence[str], topics: Sequence[str]
) -> list[SourceInfo]:
    """The sources a reader narrowed to `audiences` (none: not narrowed) who chose `topics`
    (none: all) gets changes from, in the order given."""
    return [
        s
        for s in sources
        if shares_audience(audiences, s.audiences) and covers_topics(topics, s.topics)
    ]


def role_audiences(session: Session) -> dict[str, tuple[str, ...]]:
    """Each role the sources file maps, with its audience keys."""
    rows = session.execute(select(RoleAudiences.role, RoleAudiences.audiences))
    return {role: tuple(keys or ()) for role, keys in rows}


def audiences_for(session: Session, role: str) -> tuple[str, ...]:
    """The audience keys of `role`; empty when it has none (it is not narrowed)."""
    if not role:
        return ()
    keys = session.scalar(select(RoleAudiences.audiences).where(RoleAudiences.role == role))
    return tuple(keys or ())


def audience_labels(session: Session) -> dict[str, str]:
    """Every stored audience's key and Norwegian label, in the sources file's order."""
    rows = session.execute(
        select(Audience.key, Audience.label).order_by(Audience.position, Audience.key)
    )
    return {key: label for key, label in rows}


def enabled_sources(session: Session) -> list[SourceInfo]:
    """The enabled sources, in the order they were added."""
    rows = session.execute(
        select(Source.key, Source.name, Source.url, Source.topics, Source.audiences)
        .where(Source.enabled.is_(True))
        .order_by(Source.id)
    )
    return [
        SourceInfo(key, name, url, tuple(topics or ()), tuple(audiences or ()))
        for key, name, url, topics, audiences in rows
    ]


def sources_for(
    session: Session, role: str, topics: Sequence[str], role_only: bool = True
) -> list[SourceInfo]:
    """The enabled sources whose changes a reader of `role` (narrowed to it if `role_only`)
    who chose `topics` (none: all) gets: what the pages show a choice brings."""
    audiences = audiences_for(session, role) if role_only else ()
    return matching_sources(enabled_sources(session), audiences, topics)


def sources_by_role(session: Session, topics: Sequence[str] = ()) -> dict[str, list[SourceInfo]]:
    """For each role the sources file maps, `sources_for` it narrowed: for a page that
    shows every role's resources at once (two queries, whatever the number of roles)."""
    sources = enabled_sources(session)
    return {
        role: matching_sources(sources, keys, topics)
        for role, keys in role_audiences(session).items()
    }
