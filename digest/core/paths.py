"""Where the shipped folders are: beside the package in a checkout, inside it when installed."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # digest/, above core/


def _shipped(name: str) -> Path:
    # The wheel carries templates/ and migrations/ inside the package (pyproject
    # force-include); a checkout or editable install has them at the top level.
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name}/ folder is missing from this installation")


def templates_dir() -> Path:
    return _shipped("templates")


def migrations_dir() -> Path:
    return _shipped("migrations")
