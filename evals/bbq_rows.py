"""Reading BBQ rows (SPEC §3): one JSON line of ``data/{Category}.jsonl`` → a typed :class:`BbqItem`.

Every field is checked and a bad line raises :class:`~evals.datasets.DatasetFormatError` naming
``file:line``; the biased option is found by :func:`evals.bbq_groups.biased_option`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evals.bbq_groups import UNKNOWN_TAG, biased_option
from evals.datasets import DatasetFormatError, iter_jsonl


@dataclass(frozen=True, slots=True)
class BbqItem:
    """One BBQ row."""

    category: str
    example_id: int
    question_index: str
    question_polarity: Literal["neg", "nonneg"]
    context_condition: Literal["ambig", "disambig"]
    context: str
    question: str
    answers: tuple[str, str, str]
    answer_tags: tuple[str, str, str]
    """answer_info's group tag of each option (``unknown`` for the unknown option)."""
    label: int
    """Index of the correct option."""
    unknown: int
    """Index of the unknown option."""
    biased: int | None
    """Index of the biased option; None where it cannot be determined."""
    stereotyped_groups: tuple[str, ...]
    subcategory: str

    @property
    def item_id(self) -> str:
        return f"{self.category}/{self.example_id}"

    @property
    def cluster(self) -> str:
        """The template: the bootstrap's resampling unit."""
        return f"{self.category}/{self.question_index}"


def _field(row: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in row:
        raise DatasetFormatError(f"{where}: missing field {name!r}")
    value = row[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DatasetFormatError(f"{where}: field {name!r} must be {kind.__name__}, got {value!r}")
    return value


def parse_row(row: dict[str, Any], category: str, where: str) -> BbqItem:
    """A :class:`BbqItem` from one parsed JSON line; ``where`` (``file:line``) is named in errors."""
    polarity = _field(row, "question_polarity", str, where)
    if polarity not in ("neg", "nonneg"):
        raise DatasetFormatError(f"{where}: question_polarity must be neg or nonneg, got {polarity!r}")
    condition = _field(row, "context_condition", str, where)
    if condition not in ("ambig", "disambig"):
        raise DatasetFormatError(f"{where}: context_condition must be ambig or disambig, got {condition!r}")
    label = _field(row, "label", int, where)
    if label not in (0, 1, 2):
        raise DatasetFormatError(f"{where}: label must be 0, 1 or 2, got {label!r}")
    info = _field(row, "answer_info", dict, where)
    pairs: list[tuple[str, str]] = []
    for k in range(3):
        pair = info.get(f"ans{k}")
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)):
            raise DatasetFormatError(f"{where}: answer_info.ans{k} must be [text, tag], got {pair!r}")
        pairs.append((pair[0], pair[1]))
    unknowns = [k for k, (_, tag) in enumerate(pairs) if tag == UNKNOWN_TAG]
    if len(unknowns) != 1:
        raise DatasetFormatError(
            f"{where}: exactly one answer_info tag must be {UNKNOWN_TAG!r}, found {len(unknowns)} "
            f"({[tag for _, tag in pairs]})"
        )
    metadata = _field(row, "additional_metadata", dict, where)
    groups = metadata.get("stereotyped_groups", [])
    if not (isinstance(groups, list) and all(isinstance(g, str) for g in groups)):
        raise DatasetFormatError(f"{where}: additional_metadata.stereotyped_groups must be a list of strings")
    answers = (_field(row, "ans0", str, where), _field(row, "ans1", str, where), _field(row, "ans2", str, where))
    raw_index = row.get("question_index")
    if not isinstance(raw_index, str | int) or isinstance(raw_index, bool):
        raise DatasetFormatError(f"{where}: field 'question_index' must be a string, got {raw_index!r}")
    question_index = str(raw_index)
    return BbqItem(
        category=category,
        example_id=_field(row, "example_id", int, where),
        question_index=question_index,
        question_polarity=polarity,
        context_condition=condition,
        context=_field(row, "context", str, where),
        question=_field(row, "question", str, where),
        answers=answers,
        answer_tags=(pairs[0][1], pairs[1][1], pairs[2][1]),
        label=label,
        unknown=unknowns[0],
        biased=biased_option(
            category=category,
            question_index=question_index,
            polarity=polarity,
            answer_info=pairs,
            answers=answers,
            stereotyped_groups=groups,
        ),
        stereotyped_groups=tuple(groups),
        subcategory=str(metadata.get("subcategory", "")),
    )


def read_category(path: Path, category: str, *, limit: int | None = None) -> list[BbqItem]:
    """Every row of one category file (or its first ``limit`` rows), in file order."""
    return [parse_row(row, category, f"{path}:{number}") for number, row in iter_jsonl(path, limit=limit)]
