"""Norway's municipalities, from the data file shipped with the package (SSB, KLASS 131)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "kommuner.csv"


@dataclass(frozen=True, slots=True)
class Municipality:
    number: str  # four digits, e.g. "0301"
    name: str  # as SSB writes it, e.g. "Oslo - Oslove"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.number})"


@lru_cache(maxsize=1)
def municipalities() -> tuple[Municipality, ...]:
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("nummer;"):
            continue
        number, name = line.split(";", 1)
        rows.append(Municipality(number, name))
    return tuple(sorted(rows, key=lambda m: m.name.casefold()))


@lru_cache(maxsize=1)
def _index() -> dict[str, Municipality]:
    index: dict[str, Municipality] = {}
    for m in municipalities():
        index[m.number] = m
        index[m.name.casefold()] = m
        # «Deatnu - Tana» is also known as «Tana»; «Oslo - Oslove» as «Oslo».
        for part in m.name.split(" - "):
            index.setdefault(part.strip().casefold(), m)
    return index


def find_municipality(text: str) -> Municipality | None:
    """By number (with or without a leading zero) or by name, in any case; None if unknown."""
    key = " ".join(text.split()).casefold()
    if not key:
        return None
    if key.isdigit() and len(key) <= 4:
        key = key.zfill(4)
    return _index().get(key)
