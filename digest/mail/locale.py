"""Words of the mails in bokmål, nynorsk and English, from the catalogues in templates/locale/.

A missing word falls back to bokmål, the service's own language.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from digest.core.paths import templates_dir

LANGUAGES = ("nb", "nn", "en")
DEFAULT = "nb"


@lru_cache(maxsize=8)
def catalogue(language: str) -> dict[str, object]:
    path = templates_dir() / "locale" / f"{language}.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _lookup(language: str, key: str) -> object:
    own = catalogue(language if language in LANGUAGES else DEFAULT)
    return own[key] if key in own else catalogue(DEFAULT)[key]


def translator(language: str) -> Callable[..., str]:
    """t(key, **values): the word or sentence for `key`, with values filled in."""

    def t(key: str, **values: object) -> str:
        return str(_lookup(language, key)).format(**values)

    return t


def counted(language: str, n: int, key: str) -> str:
    """«1 ny artikkel», «2 nye artikler»: `key`_one or `key`_many."""
    return translator(language)(f"{key}_{'one' if n == 1 else 'many'}", n=n)


def format_date(
    moment: datetime, tz: ZoneInfo, language: str = DEFAULT, with_year: bool = True
) -> str:
    local = moment.astimezone(tz)
    months = _lookup(language, "months")
    assert isinstance(months, list)
    key = "date" if with_year else "date_short"
    return translator(language)(key, day=local.day, month=months[local.month - 1], year=local.year)
