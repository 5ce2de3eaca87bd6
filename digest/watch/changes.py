"""What changed between two versions of an article, in a short Norwegian sentence (pure).

Paragraphs added, removed or reworded are named by their nearest heading («Nytt avsnitt
under «Fysisk sikkerhet»»); a new declared date is quoted as the page writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher

MAX_PARTS = 4

Block = tuple[str, str]  # (nearest heading, paragraph text)


def _where(heading: str) -> str:
    return f"under «{heading}»" if heading else "i innledningen"


def _count(n: int, one: str, many: str) -> str:
    return one if n == 1 else f"{n} {many}"


def summarise_change(
    old_blocks: Sequence[Sequence[str]],
    new_blocks: Sequence[Sequence[str]],
    *,
    old_title: str = "",
    new_title: str = "",
    old_declared: str = "",
    new_declared: str = "",
) -> str:
    old: list[Block] = [(h, t) for h, t in old_blocks]
    new: list[Block] = [(h, t) for h, t in new_blocks]
    parts: list[str] = []
    if old_title and new_title and old_title != new_title:
        parts.append(f"Ny tittel: «{new_title}»")
    added_sections = _sections_only_in(new, old)
    removed_sections = _sections_only_in(old, new)
    parts.extend(f"Ny del: «{h}»" for h in added_sections)
    parts.extend(f"Fjernet del: «{h}»" for h in removed_sections)
    for heading, counts in _tally(old, new).items():
        if heading not in added_sections and heading not in removed_sections:
            parts.extend(_paragraph_parts(heading, counts))  # else said as a whole part
    if not parts and (old != new or not old):
        parts.append("Endret tekst")
    sentence = "; ".join(_capped(parts)) + "."
    if new_declared and new_declared != old_declared:
        sentence += f" {new_declared}."
    return sentence


def _sections_only_in(blocks: list[Block], other: list[Block]) -> list[str]:
    """The headings of `blocks` that `other` does not have, in order of first appearance."""
    elsewhere = {h for h, _ in other if h}
    return [h for h in dict.fromkeys(h for h, _ in blocks) if h and h not in elsewhere]


def _tally(old: list[Block], new: list[Block]) -> dict[str, list[int]]:
    """Per heading, in order of first appearance: counts of paragraphs added, removed and
    reworded."""
    tally: dict[str, list[int]] = {}

    def count(block: Block, which: int) -> None:
        tally.setdefault(block[0], [0, 0, 0])[which] += 1

    matcher = SequenceMatcher(a=[t for _, t in old], b=[t for _, t in new], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        # A replaced run rewords as many paragraphs as both sides have; the rest of the
        # longer side is added or removed.
        reworded = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(j1, j1 + reworded):
            count(new[k], 2)
        for k in range(j1 + reworded, j2):
            count(new[k], 0)
        for k in range(i1 + reworded, i2):
            count(old[k], 1)
    return tally


def _paragraph_parts(heading: str, counts: list[int]) -> list[str]:
    added, removed, reworded = counts
    where = _where(heading)
    parts = []
    if added:
        parts.append(f"{_count(added, 'Nytt avsnitt', 'nye avsnitt').capitalize()} {where}")
    if removed:
        parts.append(
            f"{_count(removed, 'Fjernet avsnitt', 'avsnitt fjernet').capitalize()} {where}"
        )
    if reworded:
        parts.append(f"Endret tekst {where}")
    return parts


def _capped(parts: list[str]) -> list[str]:
    """At most MAX_PARTS parts, and a count of the rest."""
    if len(parts) <= MAX_PARTS:
        return parts
    rest = len(parts) - MAX_PARTS
    return [*parts[:MAX_PARTS], f"og {rest} {'annen endring' if rest == 1 else 'andre endringer'}"]
