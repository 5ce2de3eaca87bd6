"""What a person chooses (name, municipality, role and whether only what is made for it,
frequency, topics, language), checked.

Pure: no database. Every way in (the forms, the CLI, a roster) checks choices here, and a
bad one raises `SubscriberError` naming the form field at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from subscribers.errors import SubscriberError
from subscribers.models import Frequency, Language, Role, SignupRequest, Subscriber
from subscribers.municipalities import find_municipality
from subscribers.text import clean_line

E = TypeVar("E", bound=StrEnum)


def _member(vocabulary: type[E], value: str, field: str) -> E:
    """The member of `vocabulary` that `value` names, or SubscriberError naming `field`."""
    value = clean_line(value).lower()
    try:
        return vocabulary(value)
    except ValueError:
        allowed = ", ".join(vocabulary)
        raise SubscriberError(f"unknown {field} {value!r} (one of: {allowed})", field) from None


def parse_frequency(value: str) -> Frequency:
    return _member(Frequency, value, "frequency")


def parse_role(value: str) -> str:
    """A role's value, or '' when none is given (a role is optional)."""
    return _member(Role, value, "role").value if clean_line(value) else ""


def parse_language(value: str) -> Language:
    """The language `value` names; bokmål when none is given."""
    return _member(Language, clean_line(value) or Language.BOKMAL, "language")


# How a form, the CLI or a roster may say yes or no («Bare det som er laget for min rolle»).
_YES = frozenset({"1", "on", "true", "yes", "ja"})
_NO = frozenset({"0", "off", "false", "no", "nei", ""})


def parse_yes_no(value: str, field: str) -> bool:
    """Yes or no as `value` says it, or SubscriberError naming `field`."""
    answer = clean_line(value).lower()
    if answer in _YES:
        return True
    if answer in _NO:
        return False
    raise SubscriberError(f"the {field} answer {answer[:20]!r} is neither yes nor no", field)


def parse_municipality(value: str) -> str:
    """The municipality's number, from its number or name; '' when none is given."""
    value = clean_line(value)
    if not value:
        return ""
    found = find_municipality(value)
    if found is None:
        raise SubscriberError(f"unknown municipality {value!r}", "municipality")
    return found.number


def clean_text(value: str, limit: int, what: str) -> str:
    """One line of safe text from a form, the CLI or a roster (see `subscribers.text`):
    encoded words decoded, control, line-break, bidi and zero-width characters removed.
    Raises SubscriberError when it is longer than `limit`, rather than cutting it."""
    text = clean_line(value)
    if len(text) > limit:
        raise SubscriberError(f"the {what} is longer than {limit} characters", what)
    return text


def clean_name(value: str) -> str:
    return clean_text(value, 200, "name")


def clean_topics(topics: Iterable[str], known: set[str] | None = None) -> list[str]:
    cleaned = sorted({clean_line(t).lower() for t in topics if t and clean_line(t)})
    if known is not None:
        unknown = [t for t in cleaned if t not in known]
        if unknown:
            raise SubscriberError(f"unknown topic(s): {', '.join(unknown)}", "topic")
    return cleaned


@dataclass(frozen=True, slots=True)
class Choices:
    """What a person chooses, already checked (see `choices`)."""

    name: str = ""
    municipality: str = ""  # number
    role: str = ""  # a Role's value, or "" for none (the column keeps "" for none)
    # «Bare det som er laget for min rolle». None: not answered, which is yes for a new
    # person with a role (`role_only_for_new`) and leaves a known person's answer as it is.
    role_only: bool | None = None
    frequency: Frequency = Frequency.DAILY
    topics: tuple[str, ...] = ()
    language: Language = Language.BOKMAL


def choices(
    *,
    name: str = "",
    municipality: str = "",
    role: str = "",
    role_only: bool | None = None,
    frequency: str = Frequency.DAILY,
    topics: Iterable[str] = (),
    language: str = "",
    known_topics: set[str] | None = None,
) -> Choices:
    """Check a person's choices; raises SubscriberError naming the first bad one."""
    return Choices(
        name=clean_name(name),
        municipality=parse_municipality(municipality),
        role=parse_role(role),
        role_only=role_only,
        frequency=parse_frequency(frequency),
        topics=tuple(clean_topics(topics, known_topics)),
        language=parse_language(language),
    )


def role_only_for_new(chosen: Choices) -> bool:
    """A new person's «only what is made for my role»: as answered, else on with a role."""
    return bool(chosen.role) if chosen.role_only is None else chosen.role_only


def apply_choices(subscriber: Subscriber, chosen: Choices) -> bool:
    """Set the chosen preferences on a subscriber; True if anything changed (a role_only
    not answered leaves theirs as it is)."""
    changed = False
    for field in ("name", "municipality", "role", "frequency", "language"):
        if getattr(subscriber, field) != getattr(chosen, field):
            setattr(subscriber, field, getattr(chosen, field))
            changed = True
    if chosen.role_only is not None and subscriber.role_only != chosen.role_only:
        subscriber.role_only = chosen.role_only
        changed = True
    if list(subscriber.topics or []) != list(chosen.topics):
        subscriber.topics = list(chosen.topics)
        changed = True
    return changed


def choices_json(chosen: Choices) -> dict[str, object]:
    return {
        "name": chosen.name,
        "municipality": chosen.municipality,
        "role": chosen.role,
        "role_only": chosen.role_only,
        "frequency": chosen.frequency,
        "topics": list(chosen.topics),
        "language": chosen.language,
    }


def requested_choices(request: SignupRequest) -> Choices:
    """The choices a request carries (written by `choices_json`, so already checked; a
    value outside its vocabulary all the same comes back as none, or the default, rather
    than reaching a column that refuses it)."""
    data = request.choices if isinstance(request.choices, dict) else {}

    def text(key: str, default: str = "") -> str:
        value = data.get(key)
        return value if isinstance(value, str) else default

    def member(vocabulary: type[E], key: str, default: E) -> E:
        try:
            return vocabulary(text(key, default))
        except ValueError:
            return default

    topics = data.get("topics")
    role_only = data.get("role_only")
    return Choices(
        name=text("name"),
        municipality=text("municipality"),
        # Kept as stored: the first version took any role as free text, and confirming a
        # new link must not erase what such a person once gave.
        role=text("role"),
        # A request from before the question was asked did not answer it.
        role_only=role_only if isinstance(role_only, bool) else None,
        frequency=member(Frequency, "frequency", Frequency.DAILY),
        topics=tuple(t for t in topics if isinstance(t, str)) if isinstance(topics, list) else (),
        language=member(Language, "language", Language.BOKMAL),
    )


def stored_choices(subscriber: Subscriber) -> Choices:
    return Choices(
        name=subscriber.name,
        municipality=subscriber.municipality,
        role=subscriber.role,
        role_only=subscriber.role_only,
        frequency=subscriber.frequency,
        topics=tuple(subscriber.topics or ()),
        language=subscriber.language,
    )


def summary(chosen: Choices) -> str:
    role_only = "" if chosen.role_only is None else f"role_only={chosen.role_only}; "
    return (
        f"{role_only}frequency={chosen.frequency}; "
        f"topics={','.join(chosen.topics) or 'all'}; language={chosen.language}"
    )
