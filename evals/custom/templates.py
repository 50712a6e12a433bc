"""Templates over a data row's columns (``schemas.custom``), and where a condition's instruction goes.

``{column}`` is replaced by the row's value (``{column:.1f}`` formats it; a text cell that reads as a
number is formatted as that number, so CSV files work like JSON ones). A question may hold
``{instruction}`` once: a condition's instruction goes there, and under a condition without one the
placeholder is removed with one adjacent space (``"… 3.1. {instruction} Based on …"`` reads
``"… 3.1. Based on …"``). Without the placeholder the instruction goes after the question on a new line,
as for BBQ and Winogender.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evals.custom.files import DataFile, DataRow
from schemas.custom import template_fields
from schemas.errors import DataError

INSTRUCTION = "instruction"
RESERVED = frozenset({INSTRUCTION, "options", "label"})
"""Template names filled by moralscope, not from the row."""


@dataclass(frozen=True, slots=True)
class Question:
    """A rendered question, cut where the instruction goes (``after`` is None without the placeholder)."""

    before: str
    after: str | None = None

    @property
    def plain(self) -> str:
        """The question under a condition without an instruction."""
        return self.with_instruction(None)

    def with_instruction(self, instruction: str | None) -> str:
        if self.after is None:
            return f"{self.before}\n{instruction}" if instruction else self.before
        if instruction:
            return f"{self.before}{instruction}{self.after}"
        if self.after.startswith((" ", "\n")):
            return self.before + self.after[1:]
        return (self.before[:-1] if self.before.endswith((" ", "\n")) else self.before) + self.after


def check_columns(
    file: DataFile, *, templates: Mapping[str, str | None], columns: Mapping[str, str | None], what: str
) -> None:
    """Raise naming the first template field or configured column (by its spec field) that the file lacks."""
    lacks = f"which {file.source} lacks (its columns: {', '.join(file.columns) or 'none'})"
    for role, text in templates.items():
        for name in template_fields(text or ""):
            if name not in RESERVED and name not in file.columns:
                raise DataError(f"{what}: {role} uses {{{name}}}, a column {lacks}")
    for role, column in columns.items():
        if column is not None and column not in file.columns:
            raise DataError(f"{what}: {role} names the column {column!r}, {lacks}")


def _format(value: Any, spec: str, where: str) -> str:
    if not spec:
        return str(value)
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        pass
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return format(kind(value), spec)
            except (ValueError, TypeError):
                continue
    raise DataError(f"{where}: cannot format {value!r} with :{spec}")


def render(text: str, file: DataFile, row: DataRow, *, fixed: Mapping[str, str] | None = None) -> str:
    """The template with the row's values (``fixed`` supplies reserved names such as ``options``)."""
    return "".join(_pieces(string.Formatter().parse(text), file, row, fixed or {}))


def _pieces(
    parsed: Iterable[tuple[str, str | None, str | None, str | None]],
    file: DataFile,
    row: DataRow,
    fixed: Mapping[str, str],
) -> Iterable[str]:
    for literal, name, spec, _ in parsed:
        yield literal
        if name is None:
            continue
        if name in fixed:
            yield fixed[name]
            continue
        where = file.where(row, name)
        if name not in row.values:
            raise DataError(f"{where}: missing (the row has no such field)")
        value = row.values[name]
        if value is None or value == "":
            raise DataError(f"{where}: empty, but a template uses it")
        yield _format(value, spec or "", where)


def render_question(text: str, file: DataFile, row: DataRow, *, fixed: Mapping[str, str] | None = None) -> Question:
    """The question template rendered, cut at ``{instruction}`` if it has one."""
    parsed = list(string.Formatter().parse(text))
    for index, (_, name, _, _) in enumerate(parsed):
        if name == INSTRUCTION:
            head = [*parsed[:index], (parsed[index][0], None, None, None)]
            before = "".join(_pieces(head, file, row, fixed or {}))
            after = "".join(_pieces(parsed[index + 1 :], file, row, fixed or {}))
            return Question(before, after)
    return Question(render(text, file, row, fixed=fixed))
