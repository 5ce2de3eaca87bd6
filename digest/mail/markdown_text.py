"""Markdown to plain text (pure), for the text part of a mail: the words and the http(s)
addresses of the links, with no markup, no typed HTML and no unsafe link left in."""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it.token import Token

from subscribers.text import strip_invisible

_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_BLANK_RUNS = re.compile(r"\n{3,}")


def _inline(children: Sequence[Token]) -> str:
    parts: list[str] = []
    href = ""
    start = 0
    for token in children:
        if token.type in ("text", "code_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif token.type == "image":
            parts.append(token.content or "")
        elif token.type == "link_open":
            href = str(token.attrGet("href") or "")
            start = len(parts)
        elif token.type == "link_close":
            label = "".join(parts[start:]).strip()
            if href.lower().startswith(("http://", "https://")) and href != label:
                parts.append(f" ({href})")
            href = ""
        # html_inline and anything else: dropped (raw HTML is not part of the text).
    return _TAG.sub("", "".join(parts))


def markdown_text(tokens: Sequence[Token]) -> str:
    """The text of parsed Markdown (markdown-it tokens): blocks separated by a blank line,
    list items as «- …», code blocks as they are."""
    lines: list[str] = []
    depth = 0
    pending_bullet = False
    ordinal: list[int] = []
    for token in tokens:
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
            ordinal.append(0 if token.type == "ordered_list_open" else -1)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            ordinal.pop()
            lines.append("")
        elif token.type == "list_item_open":
            pending_bullet = True
        elif token.type == "inline":
            text = _inline(token.children or [])
            if pending_bullet and ordinal:
                if ordinal[-1] >= 0:
                    ordinal[-1] += 1
                    marker = f"{ordinal[-1]}. "
                else:
                    marker = "- "
                indent = "  " * (depth - 1)
                text = indent + marker + text.replace("\n", "\n" + indent + "  ")
                pending_bullet = False
            lines.append(text)
        elif token.type in ("code_block", "fence"):
            lines.append(_TAG.sub("", token.content.rstrip("\n")))
        elif (token.type == "paragraph_close" and depth == 0) or token.type in (
            "heading_close",
            "hr",
        ):
            lines.append("")
    physical = "\n".join(lines).split("\n")
    text = "\n".join(strip_invisible(line).rstrip() for line in physical)
    return _BLANK_RUNS.sub("\n\n", text).strip()
