"""Plain-text pieces of numpydoc class docstrings: the summary and each parameter's description.

Only the first paragraph of each piece is kept, with reStructuredText roles and literals
reduced to their text (":class:`~sklearn.svm.SVC`" → "SVC", "``x``" → "x").
"""

from __future__ import annotations

import inspect
import re
from typing import Any

_ROLE = re.compile(r":([a-z]+):`~?([^`<]*?)\s*(<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]*)``|`([^`]*)`")
_SECTION = re.compile(r"^(\w[\w ]*)\n-{3,}$", re.MULTILINE)
_PARAMETER = re.compile(r"^(\w+)\s*:")


def summary(cls: type[Any], limit: int = 700) -> str:
    """The docstring's summary line plus its first extended paragraph, as plain text."""
    doc = inspect.getdoc(cls) or ""
    head = _SECTION.split(doc, maxsplit=1)[0]
    paragraphs = [p for p in (_paragraph(block) for block in head.split("\n\n")) if p]
    kept: list[str] = []
    for paragraph in paragraphs[:2]:
        if paragraph.startswith(("Read more", "..", ".. ")):
            break
        kept.append(paragraph)
    text = " ".join(kept) or cls.__name__
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def parameter_descriptions(cls: type[Any]) -> dict[str, str]:
    """Parameter name → first paragraph of its description in the `Parameters` section."""
    doc = inspect.getdoc(cls) or ""
    sections = _SECTION.split(doc)
    # split gives [head, title1, body1, title2, body2, ...]
    bodies = dict(zip(sections[1::2], sections[2::2], strict=False))
    body = bodies.get("Parameters", "")
    result: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in body.splitlines():
        match = _PARAMETER.match(line)
        if match and not line.startswith(" "):
            if name is not None:
                result[name] = _first_paragraph(lines)
            name, lines = match.group(1), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        result[name] = _first_paragraph(lines)
    return result


def _first_paragraph(lines: list[str]) -> str:
    block: list[str] = []
    for line in lines:
        if not line.strip():
            if block:
                break
            continue
        block.append(line)
    return _paragraph("\n".join(block))


def _paragraph(block: str) -> str:
    text = " ".join(line.strip() for line in block.strip().splitlines())
    text = _ROLE.sub(_role_text, text)
    text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)
    return re.sub(r"\s+", " ", text).strip()


def _role_text(match: re.Match[str]) -> str:
    role, text, target = match.group(1), match.group(2), match.group(3)
    if target:  # `Display text <target>`
        return text
    if role == "ref":  # a bare label: only meaningful inside the scikit-learn docs
        return "the scikit-learn documentation"
    return text.rsplit(".", 1)[-1]  # ~sklearn.svm.SVC → SVC
