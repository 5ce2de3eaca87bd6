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
    old = [(h, t) for h, t in old_blocks]
    new = [(h, t) for h, t in new_blocks]
    parts: list[str] = []
    if old_title and new_title and old_title != new_title:
        parts.append(f"Ny tittel: «{new_title}»")
    old_headings = {h for h, _ in old if h}
    new_headings = {h for h, _ in new if h}
    added_sections = [h for h in dict.fromkeys(h for h, _ in new) if h and h not in old_headings]
    removed_sections = [h for h in dict.fromkeys(h for h, _ in old) if h and h not in new_headings]
    parts.extend(f"Ny del: «{h}»" for h in added_sections)
    parts.extend(f"Fjernet del: «{h}»" for h in removed_sections)

    # Per heading, in order of first appearance: counts of added, removed, reworded.
    tally: dict[str, list[int]] = {}
    matcher = SequenceMatcher(a=[t for _, t in old], b=[t for _, t in new], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "replace":
            reworded = min(i2 - i1, j2 - j1)
            for k in range(reworded):
                tally.setdefault(new[j1 + k][0], [0, 0, 0])[2] += 1
            for k in range(j1 + reworded, j2):
                tally.setdefault(new[k][0], [0, 0, 0])[0] += 1
            for k in range(i1 + reworded, i2):
                tally.setdefault(old[k][0], [0, 0, 0])[1] += 1
        elif op == "insert":
            for k in range(j1, j2):
                tally.setdefault(new[k][0], [0, 0, 0])[0] += 1
        elif op == "delete":
            for k in range(i1, i2):
                tally.setdefault(old[k][0], [0, 0, 0])[1] += 1
    for heading, (added, removed, reworded) in tally.items():
        if heading in added_sections or heading in removed_sections:
            continue  # already said as a whole part
        where = _where(heading)
        if added:
            parts.append(f"{_count(added, 'Nytt avsnitt', 'nye avsnitt').capitalize()} {where}")
        if removed:
            parts.append(
                f"{_count(removed, 'Fjernet avsnitt', 'avsnitt fjernet').capitalize()} {where}"
            )
        if reworded:
            parts.append(f"Endret tekst {where}")
    if not parts and (old != new or not old):
        parts.append("Endret tekst")
    if len(parts) > MAX_PARTS:
        rest = len(parts) - MAX_PARTS
        parts = [
            *parts[:MAX_PARTS],
            f"og {rest} {'annen endring' if rest == 1 else 'andre endringer'}",
        ]
    sentence = "; ".join(parts) + "."
    if new_declared and new_declared != old_declared:
        sentence += f" {new_declared}."
    return sentence
