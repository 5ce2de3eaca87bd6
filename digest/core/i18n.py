"""The service's languages: gettext catalogues (templates/locale/, one domain per part of the
service) for nynorsk and English over bokmål source text, and dates by Babel in Oslo time.

Bokmål is the source language: a message's id is its bokmål text, so a message without a
translation shows in bokmål (tests/test_translations.py fails when one lacks it).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from functools import lru_cache
from gettext import NullTranslations
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from digest.core.paths import templates_dir

LANGUAGES = ("nb", "nn", "en")
DEFAULT = "nb"
SOURCE = "nb"  # the language the messages are written in
OSLO = ZoneInfo("Europe/Oslo")
# Each catalogue domain: which part of the service its messages come from (Makefile's
# `messages` target extracts each from its own files).
DOMAINS = ("mail", "public", "archive", "editor", "operator")
# Babel's locale for each language: English dates the British way (2 December 2024).
BABEL_LOCALE = {"nb": "nb_NO", "nn": "nn_NO", "en": "en_GB"}
# A long date: the weekday, day, month and year («mandag 2. desember 2024»).
_LONG_DATE = {"nb": "EEEE d. MMMM y", "nn": "EEEE d. MMMM y", "en": "EEEE d MMMM y"}
_SHORT_DATE = {"nb": "d. MMMM", "nn": "d. MMMM", "en": "d MMMM"}
# A date and time on the pages, as Norwegian forms write it («27.11.2026 kl. 09.30»).
_DATE_TIME = {"nb": "dd.MM.y 'kl.' HH.mm", "nn": "dd.MM.y 'kl.' HH.mm", "en": "d MMM y, HH:mm"}


def language_or_default(value: object) -> str:
    """`value` if it is one of the service's languages, else bokmål."""
    return value if isinstance(value, str) and value in LANGUAGES else DEFAULT


def locale_dir() -> Path:
    return templates_dir() / "locale"


def _load(path: Path, domain: str) -> Translations:
    """One domain's catalogue: its compiled .mo when that is not older than the .po, else
    the .po compiled in memory (a checkout that has not run `make catalogues`)."""
    mo, po = path.with_suffix(".mo"), path.with_suffix(".po")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fp:
            return Translations(fp, domain=domain)
    with po.open("rb") as fp:
        catalog = read_po(fp, domain=domain)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=domain)


@lru_cache(maxsize=8)
def translator(language: str) -> NullTranslations:
    """All of a language's messages (every domain merged); for bokmål, the messages as
    written. `translator(lang).gettext(...)`, `.ngettext(...)`."""
    language = language_or_default(language)
    if language == SOURCE:
        return NullTranslations()
    merged = Translations(domain="messages")
    folder = locale_dir() / language / "LC_MESSAGES"
    for domain in DOMAINS:
        path = folder / f"{domain}.po"
        if path.exists() or path.with_suffix(".mo").exists():
            merged.merge(_load(path, domain))
    return merged


def translate(language: str, message: str) -> str:
    """`message` in `language` (extracted as a message where its text is written here)."""
    return translator(language).gettext(message)


def translate_plural(language: str, singular: str, plural: str, n: int) -> str:
    """The singular or plural in `language`, as `n` calls for."""
    return translator(language).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where shown."""
    return message


# Dates. Each takes an aware moment and shows it in `tz` (the service's zone, Europe/Oslo).


def long_date(moment: datetime, tz: tzinfo, language: str) -> str:
    """«mandag 2. desember 2024», «måndag 2. desember 2024», «Monday 2 December 2024»."""
    language = language_or_default(language)
    return format_date(moment.astimezone(tz), _LONG_DATE[language], BABEL_LOCALE[language])


def short_date(moment: datetime, tz: tzinfo, language: str) -> str:
    """«2. desember», «2 December»."""
    language = language_or_default(language)
    return format_date(moment.astimezone(tz), _SHORT_DATE[language], BABEL_LOCALE[language])


def week_number(moment: datetime, tz: tzinfo, language: str) -> str:
    """The week the moment is in, by the locale's rules (ISO weeks in all three)."""
    language = language_or_default(language)
    return format_date(moment.astimezone(tz), "w", BABEL_LOCALE[language])


def week_label(moment: datetime, tz: tzinfo, language: str) -> str:
    """«uke 49», «veke 49», «week 49»."""
    return translate(language, "uke %(week)s") % {"week": week_number(moment, tz, language)}


def date_time(moment: datetime | None, tz: tzinfo, language: str) -> str:
    """A date and time as pages show them: «27.11.2026 kl. 09.30», «27 Nov 2026, 09:30»; a
    dash for none, and the ISO form for a stored value the zone cannot show."""
    if moment is None:
        return "–"
    language = language_or_default(language)
    try:
        return format_datetime(
            moment.astimezone(tz), _DATE_TIME[language], locale=BABEL_LOCALE[language]
        )
    except (OverflowError, ValueError):  # a row stored before times were checked
        return moment.isoformat()


# Templates: Jinja2's i18n extension, with the language taken from each render's `lang`.


def _context_language(context: Context) -> str:
    return language_or_default(context.get("lang"))


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translate(_context_language(context), message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return translate_plural(_context_language(context), singular, plural, n)


@pass_context
def _pgettext(context: Context, msgctxt: str, message: str) -> str:
    return translator(_context_language(context)).pgettext(msgctxt, message)


@pass_context
def _npgettext(context: Context, msgctxt: str, singular: str, plural: str, n: int) -> str:
    return translator(_context_language(context)).npgettext(msgctxt, singular, plural, n)


def install(env: Environment) -> None:
    """Jinja2's i18n extension on `env`: `{% trans %}`, `_()`, `ngettext()` in the language of
    the render's `lang` (newstyle: values by name, escaped in HTML). Also the filters
    `long_date`, `short_date`, `week_label` and `date_time`, in the render's `tz` (a
    tzinfo; Europe/Oslo when it has none)."""
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True  # as `digest messages extract` reads them
    env.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True, pgettext=_pgettext, npgettext=_npgettext
    )

    def _filter(fn: Callable[[datetime, tzinfo, str], str]) -> Any:
        @pass_context
        def apply(context: Context, moment: datetime) -> str:
            return fn(moment, _context_zone(context), _context_language(context))

        return apply

    env.filters["long_date"] = _filter(long_date)
    env.filters["short_date"] = _filter(short_date)
    env.filters["week_label"] = _filter(week_label)

    @pass_context
    def _date_time(context: Context, moment: datetime | None) -> str:
        return date_time(moment, _context_zone(context), _context_language(context))

    env.filters["date_time"] = _date_time


def _context_zone(context: Context) -> tzinfo:
    zone = context.get("tz")
    return zone if isinstance(zone, tzinfo) else OSLO


def negotiate(accept_language: str, available: Iterable[str] = LANGUAGES) -> str | None:
    """The first of `available` that an Accept-Language header asks for, by its q-values;
    «no» and «nb-NO» are bokmål, «nn-NO» nynorsk, any «en-…» English. None when it asks
    for none of them (or is not a header at all)."""
    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language[:1000].split(",")[:30]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if not 0 < quality <= 1:
            continue
        primary = tag.strip().lower().split("-")[0]
        language = {"no": "nb", "nob": "nb", "nno": "nn"}.get(primary, primary)
        if language in available:
            wanted.append((-quality, index, language))
    return min(wanted)[2] if wanted else None
