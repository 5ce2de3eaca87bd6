"""The sources file's `[audiences]` (who a source is written for) and `[roles]` (which
audiences each subscriber role belongs to): checking them, and storing them on sync."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Audience, RoleAudiences, Topic
from subscribers.models import Role

# The sizes of Audience's columns.
AUDIENCE_KEY_MAX = 100
AUDIENCE_LABEL_MAX = 200


def audience_problems(audiences: object) -> list[str]:
    """What is wrong with an `[audiences]` table, one line each (none: it can be used)."""
    if not isinstance(audiences, dict):
        return ["[audiences] must be a table mapping audience keys to labels"]
    problems = []
    for key, label in audiences.items():
        # Sources' audience keys are lowercased when read: another key could never match.
        if not key or key != key.strip().lower() or len(key) > AUDIENCE_KEY_MAX:
            problems.append(
                f"[audiences]: {key!r} is not an audience key (lower case, no spaces at the "
                f"ends, at most {AUDIENCE_KEY_MAX} characters)"
            )
        if not isinstance(label, str) or not label.strip() or len(label) > AUDIENCE_LABEL_MAX:
            problems.append(
                f"[audiences]: {key!r} needs a label of 1 to {AUDIENCE_LABEL_MAX} characters"
            )
    return problems


def read_roles(
    roles: object, audiences: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The `[roles]` table as role -> audience keys (in the file's order, each once), and
    what is wrong with it. Every key must be a subscriber role, every value a list of keys
    declared in `[audiences]`."""
    if not isinstance(roles, dict):
        return {}, ["[roles] must be a table mapping subscriber roles to lists of audiences"]
    known = {r.value for r in Role}
    problems: list[str] = []
    mapped: dict[str, tuple[str, ...]] = {}
    for role, keys in roles.items():
        if role not in known:
            problems.append(f"[roles]: {role!r} is not a role (known: {', '.join(Role)})")
            continue
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            problems.append(f"[roles]: {role} must be a list of audience keys")
            continue
        undeclared = [k for k in keys if k not in audiences]
        if undeclared:
            problems.append(
                f"[roles]: {role}: audiences not declared in [audiences]: {', '.join(undeclared)}"
            )
            continue
        mapped[role] = tuple(dict.fromkeys(keys))
    return mapped, problems


Labelled = TypeVar("Labelled", Audience, Topic)


def sync_labels(session: Session, model: type[Labelled], labels: Mapping[str, str]) -> None:
    """Make `model`'s rows (key, label, position) match a table of the file (`[topics]`,
    `[audiences]`), in its order; a key the file no longer has loses its row."""
    existing = {row.key: row for row in session.scalars(select(model))}
    for position, (key, label) in enumerate(labels.items()):
        row = existing.pop(key, None)
        if row is None:
            session.add(model(key=key, label=label, position=position))
            continue
        row.label, row.position = label, position
    for row in existing.values():
        session.delete(row)
    session.flush()


def sync_roles(session: Session, roles: Mapping[str, tuple[str, ...]]) -> None:
    """Make the RoleAudiences rows match the file's `[roles]`; a role the file no longer
    lists loses its row, and with it any narrowing."""
    existing = {r.role: r for r in session.scalars(select(RoleAudiences))}
    for role, keys in roles.items():
        row = existing.pop(role, None)
        if row is None:
            session.add(RoleAudiences(role=role, audiences=list(keys)))
        elif list(row.audiences or ()) != list(keys):
            row.audiences = list(keys)
    for row in existing.values():
        session.delete(row)
    session.flush()
