"""The rooms import one way, down: each room's imports are checked against the allowed ones.

The rule is ADR 11's picture. A new import that points up or sideways fails here with the
module and the line, so the house cannot drift away from its plan unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Room -> the rooms it may import (besides itself and third-party libraries).
ENTRY = {"delivery", "mail", "watch", "editors", "core", "subscribers"}
ALLOWED: dict[str, set[str]] = {
    "subscribers": set(),
    "core": {"subscribers"},
    "watch": {"core", "subscribers"},
    "editors": {"core", "subscribers"},
    "mail": {"core", "subscribers"},
    "delivery": {"mail", "core", "subscribers"},
    "actors": ENTRY,
    "scheduler": ENTRY | {"actors"},
    "web": ENTRY,
    "commands": ENTRY | {"web", "actors", "scheduler"},
    "package": {"commands"},  # digest/__init__.py and digest/__main__.py
}


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "subscribers":
        return "subscribers"
    if len(parts) == 1 or parts[1] == "__main__":
        return "package"
    return parts[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "digest":
            # `from digest import actors` names a module; SERVICE_NAME and __version__ are
            # the package's own, which every room may read.
            found += [
                (node.lineno, f"digest.{a.name}")
                for a in node.names
                if a.name not in ("SERVICE_NAME", "__version__")
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in ("digest", "subscribers")]


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in ("digest", "subscribers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((dotted.removesuffix(".__init__"), path))
    return found


@pytest.mark.parametrize(("module", "path"), modules(), ids=lambda v: str(v))
def test_imports_point_down(module: str, path: Path) -> None:
    room = room_of(module)
    wrong = []
    for line, name in imports_of(path):
        target = room_of(name)
        if target == room:
            continue
        if target not in ALLOWED[room]:
            wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({room} -> {target})")
    assert not wrong, "\n".join(wrong)


def test_every_room_is_known() -> None:
    rooms = {room_of(module) for module, _ in modules()}
    assert rooms <= set(ALLOWED), rooms - set(ALLOWED)
