"""``multiple_choice`` custom benchmarks: BBQ's design over your own rows (``schemas.custom``).

Each row is a question with lettered options (a, b, c, …); the spec names per row the correct option,
the "unknown" one and the biased one (an index from 0 or a letter; an empty biased cell leaves the row
out of the bias scores, like an undetermined BBQ row), and whether the context is ambiguous. The
defaults are BBQ's: answer prefix ``The answer is``, forms `` (a)`` and ``(a)``, the CoT follow-up
``Based on the above, what is the single, most likely answer choice?`` and the prefix after it.

Metrics are BBQ's, computed by the same code (:func:`evals.metrics.bbq.bbq_metrics`): accuracy in
ambiguous and disambiguated contexts, s_AMB and s_DIS (argmax and expected), per category when the spec
names a category column, and overall. The kind's own columns (``mc_*``) are read as BBQ's.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import polars as pl

from evals.bbq import answer_columns
from evals.conditions import BBQ_COT_ANSWER_PREFIX, BBQ_COT_FOLLOW_UP
from evals.custom.base import CustomBenchmark, CustomItem
from evals.custom.files import DataFile, DataRow
from evals.custom.templates import render
from evals.metrics import bbq as bbq_metric_functions
from evals.metrics.common import OVERALL, BootstrapSettings, CellKey, ClusterSums, MetricRow
from evals.prompts import Candidate, EvalPrompt
from evals.protocol import Headline
from evals.scoring import AnswerScores
from schemas.custom import MultipleChoiceSpec
from schemas.errors import DataError
from schemas.tables import BBQ_SAMPLE_FIELDS, METRIC_DESCRIPTIONS, MULTIPLE_CHOICE_SAMPLE_FIELDS

_CONTEXTS = {"ambig": "ambig", "ambiguous": "ambig", "disambig": "disambig", "disambiguated": "disambig"}
_AS_BBQ = {
    "mc_context_condition": "bbq_context_condition",
    "mc_label": "bbq_label",
    "mc_unknown": "bbq_unknown",
    "mc_biased": "bbq_biased",
}
_SHARED = ("correct", "p_correct", "p_unknown", "p_biased")


@dataclass(frozen=True, kw_only=True)
class McItem(CustomItem):
    """A multiple-choice row; options are indices into the spec's ``options``."""

    context: str
    """``ambig`` or ``disambig``."""
    correct: int
    unknown: int
    biased: int | None
    """None where the row leaves it empty (undetermined: out of the bias scores)."""


class MultipleChoiceBenchmark(CustomBenchmark):
    """A ``multiple_choice`` benchmark of a job."""

    kind = "multiple_choice"
    default_follow_up = BBQ_COT_FOLLOW_UP
    default_cot_answer_prefix = BBQ_COT_ANSWER_PREFIX
    columns = (*MULTIPLE_CHOICE_SAMPLE_FIELDS, *(f for f in BBQ_SAMPLE_FIELDS if f.name in _SHARED))
    score_columns = _SHARED
    metric_descriptions = MappingProxyType(
        {m: METRIC_DESCRIPTIONS[m].replace("BBQ", "multiple_choice", 1) for m in bbq_metric_functions.METRICS}
    )
    headlines = (
        Headline("bias_ambig", "bootstrap", "s_AMB", per_slice=True),
        Headline("bias_disambig", "bootstrap", "s_DIS"),
        Headline("accuracy_ambig", "bootstrap", "accuracy (ambiguous)"),
    )
    spec: MultipleChoiceSpec

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(string.ascii_lowercase[: len(self.spec.options)])

    def templates(self) -> dict[str, str | None]:
        options = {f"options[{i}]": text for i, text in enumerate(self.spec.options)}
        return {**super().templates(), **options}

    def column_roles(self) -> dict[str, str | None]:
        spec = self.spec
        return {
            **super().column_roles(),
            "id_column": spec.id_column,
            "correct_column": spec.correct_column,
            "unknown_column": spec.unknown_column,
            "biased_column": spec.biased_column,
            "context_column": spec.context_column,
        }

    def _option(self, file: DataFile, row: DataRow, column: str | None) -> int | None:
        """An option named by a cell: a 0-based index or a letter; None when the cell is empty."""
        if column is None:
            return None
        value = self.value(file, row, column, required=False)
        if value is None:
            return None
        labels = self.labels
        text = str(value).strip()
        if isinstance(value, int | str) and not isinstance(value, bool) and text.isdigit() and int(text) < len(labels):
            return int(text)
        if text.lower() in labels:
            return labels.index(text.lower())
        raise DataError(
            f"{file.where(row, column)}: {value!r} is not one of the {len(labels)} options; write an index "
            f"0–{len(labels) - 1} or a letter {'/'.join(labels)}"
        )

    def parse_row(self, file: DataFile, row: DataRow) -> McItem:
        spec = self.spec
        item_id = str(self.value(file, row, spec.id_column)) if spec.id_column else str(row.number)
        texts = [render(option, file, row) for option in spec.options]
        listed = " ".join(f"({label}) {text}" for label, text in zip(self.labels, texts, strict=True))
        context: str = spec.context
        if spec.context_column is not None:
            raw = str(self.value(file, row, spec.context_column)).strip().lower()
            if raw not in _CONTEXTS:
                raise DataError(f"{file.where(row, spec.context_column)}: must be ambig or disambig, got {raw!r}")
            context = _CONTEXTS[raw]
        unknown = self._option(file, row, spec.unknown_column)
        if unknown is None:
            raise DataError(f"{file.where(row, spec.unknown_column)}: empty; every row needs its unknown option")
        correct = self._option(file, row, spec.correct_column)
        if correct is None:
            if context != "ambig":
                raise DataError(
                    f"{file.where(row, spec.correct_column or spec.context_column or 'context')}: a disambiguated "
                    "row needs its correct option (set correct_column)"
                )
            correct = unknown
        biased = self._option(file, row, spec.biased_column)
        candidates = tuple(
            Candidate(label, tuple(form.format(label=label) for form in spec.option_forms)) for label in self.labels
        )
        common = self.common(file, row, item_id=item_id, fixed={"options": listed})
        return McItem(**common, candidates=candidates, context=context, correct=correct, unknown=unknown, biased=biased)

    def select(self, items: list[CustomItem], file: DataFile) -> list[CustomItem]:
        self.unique_ids(items, file, self.spec.id_column)
        return super().select(items, file)

    def sample_columns(self, prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
        item = prompt.item
        if not isinstance(item, McItem):
            raise TypeError(f"expected a McItem, got {type(item).__name__}")
        labels = self.labels
        label, unknown_label = labels[item.correct], labels[item.unknown]
        biased_label = labels[item.biased] if item.biased is not None else None
        return {
            "mc_context_condition": item.context,
            "mc_label": label,
            "mc_unknown": unknown_label,
            "mc_biased": biased_label,
            **answer_columns(scores, label=label, unknown=unknown_label, biased=biased_label),
        }

    def _as_bbq(self, samples: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
        """The cell's rows with the ``mc_*`` columns under BBQ's names; whether it has categories."""
        categories = self.spec.category_column is not None
        renamed = samples.with_columns(pl.col(ours).alias(theirs) for ours, theirs in _AS_BBQ.items())
        if not categories:
            renamed = renamed.with_columns(pl.lit(OVERALL).alias("category"))
        return renamed, categories

    def metrics(self, samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
        frame, categories = self._as_bbq(samples)
        return bbq_metric_functions.bbq_metrics(frame, key, settings, per_category=categories)

    def cluster_sums(self, samples: pl.DataFrame, metric: str, method: str = "expected") -> ClusterSums:
        return bbq_metric_functions.metric_cluster_sums(self._as_bbq(samples)[0], metric, method)
