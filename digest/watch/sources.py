"""The sources file: reading and checking its `[topics]`, `[audiences]`, `[roles]` and
`[[source]]` tables, and syncing them to Topic, Audience, RoleAudiences and Source rows,
which is all that the rest of the service reads."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Audience, Source, SourceStatus, Topic
from digest.watch.audiences import (
    audience_problems,
    read_roles,
    sync_labels,
    sync_roles,
)
from digest.watch.errors import WatchError
from digest.watch.html import parse
from digest.watch.patterns import compile_pattern
from digest.watch.readers import READERS

_SPEC_FIELDS = ("name", "kind", "url", "topics", "audiences", "language", "interval_minutes")
# The sizes of Topic's columns.
TOPIC_KEY_MAX = 100
TOPIC_LABEL_MAX = 200


class SourcesFileError(WatchError):
    """The sources file at `path` cannot be used; `problems` says why, one line each."""

    def __init__(self, path: Path, *problems: str) -> None:
        self.path = path
        self.problems = problems
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.path}: {'; '.join(self.problems)}"


class BadSourceTables(SourcesFileError):
    """Some `[[source]]` tables cannot be used; each problem names its table."""

    def _message(self) -> str:
        return f"{self.path}:\n  " + "\n  ".join(self.problems)


class EmptySourcesFile(SourcesFileError):
    """The file has no `[[source]]`: most likely the wrong or a truncated file, and syncing
    it would disable every source, so it is refused unless that is asked for."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "has no [[source]]")

    def _message(self) -> str:
        return (
            f"{self.path} has no [[source]]: not synced, since that would disable every "
            "source; `digest sources sync --allow-empty` does it if that is meant"
        )


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _LinkingOptions(_Options):
    max_pages: int = Field(30, ge=1, le=500)
    recheck_hours: int = Field(168, ge=1, le=8760)


class SitemapOptions(_LinkingOptions):
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    @field_validator("include", "exclude")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            compile_pattern(pattern)
        return value


class IndexOptions(_LinkingOptions):
    link_pattern: str
    link_selector: str = ""

    @field_validator("link_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        compile_pattern(value)
        return value

    @field_validator("link_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        return _check_selector(value) if value else value


class SectionsOptions(_Options):
    heading: str = "h2"

    @field_validator("heading")
    @classmethod
    def _selector(cls, value: str) -> str:
        return _check_selector(value) if value else value


OPTIONS: dict[str, type[_Options]] = {
    "feed": _Options,
    "sitemap": SitemapOptions,
    "index": IndexOptions,
    "sections": SectionsOptions,
}


# Enough elements for a selector to be tried on; selectolax parses it before matching.
_SAMPLE = "<main><article><h2 id='a'>T</h2><p><a href='/a'>A</a></p></article></main>"


def _check_selector(selector: str) -> str:
    try:
        parse(_SAMPLE).css(selector)
    except Exception as exc:  # selectolax raises plain exceptions for bad selectors
        raise ValueError(f"{selector!r} is not a usable CSS selector: {exc}") from None
    return selector


def check_url(url: str) -> str:
    """`url` if the fetcher can use it: http(s), a host, a port that is a number in range."""
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"{url!r} cannot be parsed as a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http or https URL")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    if port == 0:
        raise ValueError(f"{url!r} has port 0")
    return url


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    name: str = Field(min_length=1, max_length=200)
    kind: str
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    topics: list[str] = Field(default_factory=list)
    audiences: list[str] = Field(default_factory=list)
    language: str = Field("nb", pattern=r"^(nb|nn|en|se|smj|sma)$")
    interval_minutes: int = Field(60, ge=5, le=10080)
    enabled: bool = True
    # «Review before sending»: this source's changes wait for an editor's approval. An
    # editor's choice in the UI (Source.review_override) wins over it and survives syncs.
    review: bool = False
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _usable_url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in READERS:
            raise ValueError(f"unknown kind {value!r} (known: {', '.join(sorted(READERS))})")
        return value

    @model_validator(mode="after")
    def _options_of_kind(self) -> SourceSpec:
        model = OPTIONS.get(self.kind)
        if model is not None:
            # Stored with defaults filled in, so the collector can rely on them.
            self.options = model.model_validate(self.options).model_dump()
        return self

    @field_validator("topics", "audiences")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return sorted({v.strip().lower() for v in value if v.strip()})


@dataclass(slots=True)
class Catalogue:
    """What the sources file declares: topic and audience keys with their Norwegian labels,
    the audiences of each subscriber role, and sources."""

    topics: dict[str, str]
    sources: list[SourceSpec]
    audiences: dict[str, str] = field(default_factory=dict)
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)


def load_sources(path: Path) -> Catalogue:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SourcesFileError(path, f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourcesFileError(path, f"not valid TOML: {exc}") from None
    topics = data.get("topics", {})
    if not isinstance(topics, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in topics.items()
    ):
        raise SourcesFileError(path, "[topics] must map topic keys to labels")
    tables = data.get("source", [])
    if not isinstance(tables, list):
        raise SourcesFileError(path, "'source' must be an array of tables ([[source]])")
    problems = _topic_problems(topics)
    audiences = data.get("audiences", {})
    problems += audience_problems(audiences)
    if not isinstance(audiences, dict):
        audiences = {}
    roles, role_problems = read_roles(data.get("roles", {}), audiences)
    problems += role_problems
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    for number, table in enumerate(tables, start=1):
        label = f"source #{number}" + (f" ({table.get('key')})" if isinstance(table, dict) else "")
        try:
            spec = SourceSpec.model_validate(table)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "table"
                problems.append(f"{label}: {where}: {err['msg']}")
            continue
        undeclared = [t for t in spec.topics if t not in topics]
        if undeclared:
            problems.append(f"{label}: topics not declared in [topics]: {', '.join(undeclared)}")
            continue
        unknown = [a for a in spec.audiences if a not in audiences]
        if unknown:
            problems.append(f"{label}: audiences not declared in [audiences]: {', '.join(unknown)}")
            continue
        if spec.key in seen:
            problems.append(f"{label}: key {spec.key!r} is used twice")
            continue
        seen.add(spec.key)
        specs.append(spec)
    if problems:
        raise BadSourceTables(path, *problems)
    return Catalogue(topics=dict(topics), sources=specs, audiences=dict(audiences), roles=roles)


def _topic_problems(topics: Mapping[str, str]) -> list[str]:
    problems = []
    for key, label in topics.items():
        # Sources' and subscribers' topic keys are lowercased: another key could not be chosen.
        if not key or key != key.strip().lower() or len(key) > TOPIC_KEY_MAX:
            problems.append(
                f"[topics]: {key!r} is not a topic key (lower case, no spaces at the ends, "
                f"at most {TOPIC_KEY_MAX} characters)"
            )
        if not label.strip() or len(label) > TOPIC_LABEL_MAX:
            problems.append(f"[topics]: {key!r} needs a label of 1 to {TOPIC_LABEL_MAX} characters")
    return problems


@dataclass(slots=True)
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def sync_sources(session: Session, catalogue: Catalogue) -> SyncReport:
    """Make the Topic, Audience, RoleAudiences and Source rows match the catalogue; a
    removed source is disabled, keeping its state, a removed topic, audience or role is
    deleted."""
    sync_topics(session, catalogue.topics)
    sync_labels(session, Audience, catalogue.audiences)
    sync_roles(session, catalogue.roles)
    report = SyncReport()
    existing = {s.key: s for s in session.scalars(select(Source))}
    for spec in catalogue.sources:
        source = existing.pop(spec.key, None)
        if source is None:
            session.add(
                Source(
                    key=spec.key,
                    options=spec.options,
                    enabled=spec.enabled,
                    review_in_file=spec.review,
                    status=SourceStatus.NEW,
                    **{f: getattr(spec, f) for f in _SPEC_FIELDS},
                )
            )
            report.added.append(spec.key)
            continue
        if source.url != spec.url:
            # Validators belong to the old URL.
            source.etag = source.last_modified = None
        changed = False
        for name in (*_SPEC_FIELDS, "options", "enabled"):
            if getattr(source, name) != getattr(spec, name):
                setattr(source, name, getattr(spec, name))
                changed = True
        # Only the file's wish: an editor's override and an operator's pause are the UI's.
        if source.review_in_file != spec.review:
            source.review_in_file = spec.review
            changed = True
        if spec.enabled and source.status == SourceStatus.DISABLED:
            source.status = SourceStatus.NEW
            changed = True
        (report.updated if changed else report.unchanged).append(spec.key)
    for key, source in existing.items():
        if source.enabled:
            source.enabled = False
            report.disabled.append(key)
    session.flush()
    return report


def sync_topics(session: Session, topics: Mapping[str, str]) -> None:
    """Make the Topic rows match the file's `[topics]`, in its order.

    A removed topic's row goes: the pages stop offering it, and what still names its key
    (a subscriber's choice, a source's list) shows the key, as a mail did before.
    """
    sync_labels(session, Topic, topics)
