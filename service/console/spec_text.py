"""A job spec pasted or uploaded as text: parsed (YAML, so JSON too), and a field path found in the text.

The submit form shows a validation error at the field it names: :func:`locate_field` walks the YAML
node tree (which keeps line numbers) along the error's dotted path (``models.0.dtype``) to the line of
that field, or of its nearest ancestor present in the text (a missing field is reported where its
parent is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from schemas.errors import InvalidInputError

SPEC_FIELD = "spec"
"""The form field the spec text is pasted into (what parse errors name)."""


@dataclass(frozen=True)
class SpecLine:
    """One line of the spec text, as the form shows it beside an error."""

    number: int
    """1-based."""
    text: str
    marked: bool


def parse_spec_text(text: str) -> dict[str, Any]:
    """The mapping of a YAML or JSON spec; InvalidInputError (field ``spec``) naming the line when it is not one."""
    if not text.strip():
        raise InvalidInputError("paste a job spec (YAML or JSON) or choose a file", field=SPEC_FIELD)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInputError(f"the spec is not valid YAML or JSON{where}: {problem}", field=SPEC_FIELD) from exc
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"the spec must be a mapping (models, benchmarks, conditions, ...), got {type(data).__name__}",
            field=SPEC_FIELD,
        )
    return data


def _step(node: yaml.Node, part: str) -> tuple[yaml.Node, int] | None:
    """The node a path segment leads to in ``node``, and the 0-based line where that segment is written."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return value, key.start_mark.line
    elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
        item: yaml.Node = node.value[int(part)]
        return item, item.start_mark.line
    return None


def locate_field(text: str, field: str | None) -> int | None:
    """The 1-based line where ``field`` (a dotted path) is written in ``text``, or where its nearest
    written ancestor is; None when the text does not parse or names none of it."""
    if not field:
        return None
    try:
        node: yaml.Node | None = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in field.split("."):
        step = _step(node, part) if node is not None else None
        if step is None:
            break
        node, line = step
    return None if line is None else line + 1


def excerpt(text: str, line: int | None, *, context: int = 3) -> list[SpecLine]:
    """The lines around ``line`` (marked), for showing an error in place; empty without a line."""
    if line is None:
        return []
    lines = text.splitlines()
    start, stop = max(1, line - context), min(len(lines), line + context)
    return [SpecLine(number, lines[number - 1], number == line) for number in range(start, stop + 1)]
