"""What the three kinds of custom benchmark share: reading the rows, the conditions, rendering.

A custom benchmark (``schemas.custom``) is built per job entry and reads its data file when its items
are first needed (:meth:`CustomBenchmark.load_items`): every template and configured column is checked
against the file, and every row parsed into an item, before any model is loaded — a bad file is a
:class:`~schemas.errors.DataError` naming the file, the row and the column.

Built-in conditions land like this (docs/science.md): ``Q`` is the question; ``Q+IF`` adds the spec's
``instruction`` (default: BBQ's generic sentence) where the question's ``{instruction}`` placeholder is,
else after it on a new line — user-defined conditions' instructions go to the same place; ``Q+IF+CoT``
adds the spec's ``cot_lead_in`` (default: BBQ's), then the kind's follow-up and answer prefix (each
overridable). ``Q+MatchStats`` applies only to a ``correlation`` benchmark with a ``match_stats`` template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from evals.conditions import BBQ_ANSWER_PREFIX, BBQ_COT_LEAD_IN, BBQ_INSTRUCTION, Condition
from evals.custom.files import DataAccess, DataFile, DataRow, read_data_file
from evals.custom.templates import Question, check_columns, render, render_question
from evals.datasets import DatasetSources
from evals.prompts import Candidate, EvalPrompt, condition_turns
from evals.protocol import Benchmark
from schemas.custom import CorrelationSpec, MultipleChoiceSpec, PairedDecisionSpec
from schemas.errors import DataError, InvalidInputError

AnyCustomSpec = MultipleChoiceSpec | PairedDecisionSpec | CorrelationSpec


@dataclass(frozen=True, kw_only=True)
class CustomItem:
    """One data row, rendered: what every kind's item has."""

    row: int
    """The 1-based data row."""
    item_id: str
    cluster: str
    category: str | None
    question: Question
    answer_prefix: str
    cot_answer_prefix: str
    follow_up: str | None
    """The human turn after CoT reasoning; None: the plain question again."""
    candidates: tuple[Candidate, ...]
    variant: str | None = None
    match_stats: str | None = None
    """This row's Q+MatchStats instruction (correlation benchmarks that define one)."""


class CustomBenchmark(Benchmark):
    """A benchmark over a job's data file; subclasses are the kinds (see the module docstring)."""

    kind: ClassVar[str]
    default_answer_prefix: ClassVar[str] = BBQ_ANSWER_PREFIX
    default_follow_up: ClassVar[str | None] = None
    """None: the plain question again (as Winogender does)."""
    default_cot_answer_prefix: ClassVar[str | None] = None
    """None: the answer prefix."""
    rows_per_item: ClassVar[int] = 1
    """Data rows one unit of ``limit`` selects (a pair: 2)."""

    def __init__(self, spec: AnyCustomSpec, data: DataAccess | None, *, index: int = 0) -> None:
        self.spec = spec
        self.name = spec.name
        self.title = spec.title or spec.name
        self.spec_model = type(spec)
        self.conditions = MappingProxyType(self.builtin_conditions())
        self.data = data
        self.field = f"benchmarks.custom.{index}"
        self.what = f"custom benchmark {spec.name!r}"
        self.file: DataFile | None = None
        self._items: list[CustomItem] | None = None

    def builtin_conditions(self) -> dict[str, Condition]:
        instruction = self.spec.instruction or BBQ_INSTRUCTION
        lead_in = self.spec.cot_lead_in or BBQ_COT_LEAD_IN
        return {
            "Q": Condition("Q"),
            "Q+IF": Condition("Q+IF", instruction),
            "Q+IF+CoT": Condition("Q+IF+CoT", instruction, lead_in),
        }

    # -- what each kind adds -----------------------------------------------------------------------
    def templates(self) -> dict[str, str | None]:
        """The spec's templates by field name (their columns must exist)."""
        spec = self.spec
        return {
            "question": spec.question,
            "answer_prefix": spec.answer_prefix,
            "cot_follow_up": spec.cot_follow_up,
            "cot_answer_prefix": spec.cot_answer_prefix,
        }

    def column_roles(self) -> dict[str, str | None]:
        """The spec's column fields by name (they must exist)."""
        return {"cluster_column": self.spec.cluster_column, "category_column": self.spec.category_column}

    def parse_row(self, file: DataFile, row: DataRow) -> CustomItem:
        raise NotImplementedError

    def select(self, items: list[CustomItem], file: DataFile) -> list[CustomItem]:
        """Checks across rows, then the items the spec selects (``limit``)."""
        return items[: self.spec.limit] if self.spec.limit is not None else items

    # -- helpers for the kinds ---------------------------------------------------------------------
    def value(self, file: DataFile, row: DataRow, column: str, *, required: bool = True) -> Any:
        """A cell; DataError naming it when it is missing or empty and ``required``."""
        value = row.values.get(column)
        if (value is None or value == "") and required:
            raise DataError(f"{file.where(row, column)}: empty; {self.what} needs a value here")
        return None if value == "" else value

    def common(
        self, file: DataFile, row: DataRow, *, item_id: str, fixed: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The fields every item has, rendered from the row."""
        spec = self.spec
        answer_prefix = render(spec.answer_prefix or self.default_answer_prefix, file, row)
        cot_prefix = spec.cot_answer_prefix or self.default_cot_answer_prefix
        follow_up = spec.cot_follow_up or self.default_follow_up
        category = self.value(file, row, spec.category_column) if spec.category_column else None
        return {
            "row": row.number,
            "item_id": item_id,
            "cluster": str(self.value(file, row, spec.cluster_column)) if spec.cluster_column else item_id,
            "category": None if category is None else str(category),
            "question": render_question(spec.question, file, row, fixed=fixed),
            "answer_prefix": answer_prefix,
            "cot_answer_prefix": render(cot_prefix, file, row) if cot_prefix else answer_prefix,
            "follow_up": render(follow_up, file, row) if follow_up else None,
        }

    @staticmethod
    def at(file: DataFile, item: CustomItem, column: str | None = None) -> str:
        """Where an item's row is, for messages (``file: row N (line L)[, column 'c']``)."""
        return file.where(file.rows[item.row - 1], column)

    def unique_ids(self, items: list[CustomItem], file: DataFile, column: str | None) -> None:
        seen: dict[str, int] = {}
        for item in items:
            if item.item_id in seen:
                raise DataError(
                    f"{file.source}: rows {seen[item.item_id]} and {item.row} have the same id {item.item_id!r} "
                    f"(column {column!r}); {self.what} needs one id per row"
                )
            seen[item.item_id] = item.row

    # -- the Benchmark protocol --------------------------------------------------------------------
    def load_items(self, spec: Any = None, sources: DatasetSources | None = None, seed: int = 0) -> list[CustomItem]:
        """The items (read, verified and parsed once per object); ``spec`` is this benchmark's."""
        if self._items is None:
            if self.data is None:
                raise InvalidInputError(f"{self.what}: its data file cannot be read here (no data access given)")
            file = read_data_file(
                self.spec.data,
                fmt=self.spec.format,
                sha256=self.spec.sha256,
                access=self.data,
                field=f"{self.field}.data",
            )
            if not file.rows:
                raise DataError(f"{file.source}: no data rows; {self.what} needs at least one")
            check_columns(file, templates=self.templates(), columns=self.column_roles(), what=self.what)
            items = self.select([self.parse_row(file, row) for row in file.rows], file)
            if self.spec.rows is not None and self.spec.rows != len(items):
                raise DataError(
                    f"{self.what}: the spec pins rows: {self.spec.rows}, but {file.source} gives {len(items)}; "
                    "drop `rows` to use the file as it is"
                )
            self.file, self._items = file, items
        return self._items

    def planned_items(self, spec: Any = None) -> int:
        """The rows pinned in the spec (at submission); else the data is read — or, where it cannot be
        (no data access, e.g. a view of a job stored without pinning), ``limit`` (0 without one)."""
        if self.spec.rows is not None:
            return self.spec.rows
        if self.data is None:
            return (self.spec.limit or 0) * self.rows_per_item
        return len(self.load_items())

    def data_files(self, spec: Any = None, sources: DatasetSources | None = None) -> list[dict[str, Any]]:
        items = self.load_items()
        assert self.file is not None  # set by load_items
        file = self.file
        return [
            {
                "dataset": self.name,
                "key": file.source,
                "location": file.location,
                "format": file.format,
                "state": "ok",
                "bytes": file.size,
                "rows": len(file.rows),
                "items": len(items),
                "sha256": file.sha256,
            }
        ]

    def category_of(self, item: CustomItem) -> str | None:
        return item.category

    def render(self, item: CustomItem, condition: Condition) -> list[EvalPrompt]:
        instruction = item.match_stats if condition.match_stats else condition.instruction
        turns = condition_turns(
            condition,
            human=item.question.with_instruction(instruction),
            answer_prefix=item.answer_prefix,
            follow_up=item.follow_up or item.question.plain,
            cot_answer_prefix=item.cot_answer_prefix,
        )
        return [
            EvalPrompt(
                self.name,
                condition.name,
                item.item_id,
                item.variant,
                item.category,
                item.cluster,
                turns,
                item.candidates,
                item,
            )
        ]

    def candidates(self, item: CustomItem) -> tuple[Candidate, ...]:
        return item.candidates
