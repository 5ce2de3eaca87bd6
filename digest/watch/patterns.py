"""URL patterns from the sources file, run by RE2 so that no pattern takes more than linear time.

Python's `re` backtracks: `(a+)+$` against a long run of "a" followed by "b" would hold a
worker for ever. RE2 has no backreferences or lookaround, so such patterns are refused
when the sources file is read, with the reason.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import re2  # type: ignore[import-untyped]

from digest.watch.errors import WatchError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the reason goes into our own message instead


class Pattern(Protocol):
    def search(self, text: str) -> object | None: ...


class BadPattern(WatchError, ValueError):
    """A URL `pattern` RE2 cannot run; the message says why.

    Also a ValueError, so that the sources file's validators report it as a problem of
    the field it is in.
    """

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(f"{pattern!r} cannot be used as a URL pattern: {reason}")
        self.pattern = pattern


@lru_cache(maxsize=256)
def compile_pattern(text: str) -> Pattern:
    """A compiled URL pattern, or BadPattern saying why RE2 cannot run `text`.

    Kept once compiled: every read of a source (and each child sitemap) asks again."""
    try:
        pattern: Pattern = re2.compile(text, _OPTIONS)
    except re2.error as exc:
        raise BadPattern(text, _reason(exc)) from None
    return pattern


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    hint = "backreferences and lookaround are not supported; write \\Z as $"
    return f"{detail or 'not a valid pattern'} ({hint})"
