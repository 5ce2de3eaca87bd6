"""The JSON bodies of the API, as pydantic models: what a request may send (nothing
else: an unknown field is refused) and what an answer holds.

A body that does not match gets FastAPI's 422, whose `detail` names each field at fault by
its location (`["body", "title"]`); the service's own checks (known topics, a window that
ends after it starts) answer in the same shape (see `digest.web.api.errors`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from digest.core.models import Announcement, AnnouncementStatus
from digest.delivery.announcements import MAX_BODY, MAX_LINK, MAX_TITLE
from subscribers.models import Role

MAX_TOPICS = 50
MAX_MUNICIPALITIES = 400  # Norway has 357

TopicKey = Annotated[str, Field(min_length=1, max_length=40)]
MunicipalityNumber = Annotated[str, Field(pattern=r"^[0-9]{4}$")]


def _utc(moment: datetime | None) -> datetime | None:
    # As stored: a row just written still holds the offset it was sent with.
    return moment.astimezone(UTC) if moment is not None else None


def _window_ends_after_start(until: datetime | None, info: ValidationInfo) -> datetime | None:
    start = info.data.get("publish_from")
    if until is not None and start is not None and until <= start:
        raise ValueError("publish_until must be later than publish_from")
    return until


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnnouncementFields(Strict):
    """An announcement as a client writes it."""

    title: str = Field(min_length=1, max_length=MAX_TITLE, description="One line.")
    body: str = Field(
        default="",
        max_length=MAX_BODY,
        description="Markdown; raw HTML is shown as text, links are http(s) or mailto only.",
    )
    link: str | None = Field(
        default=None, max_length=MAX_LINK, description="An http:// or https:// address."
    )
    topics: list[TopicKey] = Field(
        default=[],
        max_length=MAX_TOPICS,
        description="Topic keys of the sources file; none means every topic.",
    )
    roles: list[Role] = Field(
        default=[], max_length=len(Role), description="None means every role."
    )
    municipalities: list[MunicipalityNumber] = Field(
        default=[],
        max_length=MAX_MUNICIPALITIES,
        description='Municipality numbers (e.g. "0301"); none means every municipality.',
    )
    publish_from: AwareDatetime | None = Field(
        default=None,
        description="With its offset, e.g. 2026-12-01T08:00:00+01:00. Missing: from now "
        "(create), unchanged (update).",
    )
    publish_until: AwareDatetime | None = Field(
        default=None, description="Later than publish_from; missing means no end."
    )
    pinned: StrictBool = Field(default=False, description="Shown before the others.")
    send_immediately: StrictBool = Field(
        default=False, description="Also sent with the next immediate run."
    )

    check_window = field_validator("publish_until")(_window_ends_after_start)


class AnnouncementCreate(AnnouncementFields):
    """A new announcement: a draft, or published at once with `publish`."""

    publish: StrictBool = Field(default=False, description="Publish at once; else a draft.")


class AnnouncementReplace(AnnouncementFields):
    """An edit of every field (PUT), made from `version`."""

    version: StrictInt = Field(ge=1, description="The version the edit was made from.")


class AnnouncementPatch(Strict):
    """An edit of some fields (PATCH), made from `version`; fields left out stay as they are."""

    version: StrictInt = Field(ge=1, description="The version the edit was made from.")
    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE)
    body: str | None = Field(default=None, max_length=MAX_BODY)
    link: str | None = Field(default=None, max_length=MAX_LINK)
    topics: list[TopicKey] | None = Field(default=None, max_length=MAX_TOPICS)
    roles: list[Role] | None = Field(default=None, max_length=len(Role))
    municipalities: list[MunicipalityNumber] | None = Field(
        default=None, max_length=MAX_MUNICIPALITIES
    )
    publish_from: AwareDatetime | None = None
    publish_until: AwareDatetime | None = None
    pinned: StrictBool | None = None
    send_immediately: StrictBool | None = None

    check_window = field_validator("publish_until")(_window_ends_after_start)


class AnnouncementOut(BaseModel):
    """An announcement as stored. Times are UTC."""

    id: int
    status: AnnouncementStatus
    version: int = Field(description="Send it back with an edit.")
    title: str
    body: str
    link: str | None
    topics: list[str]
    roles: list[str]
    municipalities: list[str]
    publish_from: datetime
    publish_until: datetime | None
    pinned: bool
    send_immediately: bool
    created_at: datetime
    updated_at: datetime | None
    published_at: datetime | None

    @classmethod
    def of(cls, row: Announcement) -> AnnouncementOut:
        return cls(
            id=row.id,
            status=row.status,
            version=row.version,
            title=row.title,
            body=row.body,
            link=row.link,
            topics=list(row.topics or []),
            roles=list(row.roles or []),
            municipalities=list(row.municipalities or []),
            publish_from=row.publish_from.astimezone(UTC),
            publish_until=_utc(row.publish_until),
            pinned=row.pinned,
            send_immediately=row.send_immediately,
            created_at=row.created_at.astimezone(UTC),
            updated_at=_utc(row.updated_at),
            published_at=_utc(row.published_at),
        )


class AnnouncementList(BaseModel):
    items: list[AnnouncementOut]


class ErrorItem(BaseModel):
    """One thing wrong: where (`["body", "title"]`, `["path", "announcement_id"]`,
    `["header", "Idempotency-Key"]`), what, and a type to match on."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorAnswer(BaseModel):
    """Every error answer: 401, 404, 409, 422."""

    detail: list[ErrorItem] | str
    version: int | None = Field(
        default=None, description="On a 409 for a stale edit: the stored version."
    )
