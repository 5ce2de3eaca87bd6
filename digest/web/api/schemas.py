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

from digest.core.i18n import N_
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
        raise ValueError("publiseringen må slutte etter at den begynner (publish_from)")
    return until


def described(text: str) -> ConfigDict:
    """A model's description in the schema (bokmål, as the docs page), where its docstring
    would otherwise be used."""
    return ConfigDict(json_schema_extra={"description": text})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnnouncementFields(Strict):
    """An announcement as a client writes it."""

    title: str = Field(min_length=1, max_length=MAX_TITLE, description=N_("Én linje."))
    body: str = Field(
        default="",
        max_length=MAX_BODY,
        description=N_(
            "Markdown; rå HTML vises som tekst, lenker kan bare være http(s) eller mailto."
        ),
    )
    link: str | None = Field(
        default=None,
        max_length=MAX_LINK,
        description=N_("En adresse som begynner med http:// eller https://."),
    )
    topics: list[TopicKey] = Field(
        default=[],
        max_length=MAX_TOPICS,
        description=N_("Temanøkler fra kildefilen; ingen betyr alle temaer."),
    )
    roles: list[Role] = Field(
        default=[], max_length=len(Role), description=N_("Ingen betyr alle roller.")
    )
    municipalities: list[MunicipalityNumber] = Field(
        default=[],
        max_length=MAX_MUNICIPALITIES,
        description=N_('Kommunenumre (f.eks. "0301"); ingen betyr alle kommuner.'),
    )
    publish_from: AwareDatetime | None = Field(
        default=None,
        description=N_(
            "Med tidssone, f.eks. 2026-12-01T08:00:00+01:00. Utelatt: fra nå "
            "(ny), uendret (endring)."
        ),
    )
    publish_until: AwareDatetime | None = Field(
        default=None, description=N_("Senere enn publish_from; utelatt betyr ingen slutt.")
    )
    pinned: StrictBool = Field(default=False, description=N_("Vises før de andre."))
    send_immediately: StrictBool = Field(
        default=False, description=N_("Sendes også med neste umiddelbare utsending.")
    )

    check_window = field_validator("publish_until")(_window_ends_after_start)


class AnnouncementCreate(AnnouncementFields):
    """A new announcement: a draft, or published at once with `publish`."""

    model_config = described(
        N_("En ny kunngjøring: et utkast, eller publisert med en gang med `publish`.")
    )

    publish: StrictBool = Field(
        default=False, description=N_("Publiser med en gang; ellers et utkast.")
    )


class AnnouncementReplace(AnnouncementFields):
    """An edit of every field (PUT), made from `version`."""

    model_config = described(N_("En endring av alle feltene (PUT), gjort fra `version`."))

    version: StrictInt = Field(ge=1, description=N_("Versjonen endringen ble gjort fra."))


class AnnouncementPatch(Strict):
    """An edit of some fields (PATCH), made from `version`; fields left out stay as they are."""

    model_config = described(
        N_("En endring av noen felt (PATCH), gjort fra `version`; felt som utelates, blir stående.")
    )

    version: StrictInt = Field(ge=1, description=N_("Versjonen endringen ble gjort fra."))
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

    model_config = described(N_("En kunngjøring slik den er lagret. Tider er i UTC."))

    id: int
    status: AnnouncementStatus
    version: int = Field(description=N_("Send den tilbake med en endring."))
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
    model_config = described(N_("Kunngjøringene."))
    items: list[AnnouncementOut]


class ErrorItem(BaseModel):
    """One thing wrong: where (`["body", "title"]`, `["path", "announcement_id"]`,
    `["header", "Idempotency-Key"]`), what, and a type to match on."""

    model_config = described(
        N_(
            'Én feil: hvor (`loc`: `["body", "title"]`, `["path", "announcement_id"]`, '
            '`["header", "Idempotency-Key"]`), hva (`msg`) og en type å skille på (`type`).'
        )
    )

    loc: list[str | int]
    msg: str
    type: str


class ErrorAnswer(BaseModel):
    """Every error answer: 401, 404, 409, 422."""

    model_config = described(N_("Alle feilsvar: 401, 404, 409, 422, 503."))

    detail: list[ErrorItem] | str
    version: int | None = Field(
        default=None, description=N_("Ved 409 for en utdatert endring: den lagrede versjonen.")
    )
