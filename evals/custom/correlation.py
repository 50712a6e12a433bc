"""``correlation`` custom benchmarks: the Winogender design over your own rows (``schemas.custom``).

Each row asks a question whose answers (``options``, each with surface forms that may use the row's
columns, e.g. the pronoun case) have a probability; the ``target`` option's normalised probability is
correlated with the row's reference statistic (``reference_column``: a number, one value per cluster;
rows of one cluster are averaged first, as Winogender's CoT samples are). With a ``match_stats``
template, the built-in Q+MatchStats applies with it. The CoT follow-up repeats the plain question, as
Winogender's does.

Metrics are Winogender's, computed by the same code (:func:`evals.metrics.correlation.correlation_metrics`):
Pearson ρ with Fisher-z and bootstrap intervals, and each option's mean probability
(``mean_p_<label>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import polars as pl

from evals.conditions import Condition
from evals.custom.base import CustomBenchmark, CustomItem
from evals.custom.files import DataFile, DataRow
from evals.custom.templates import render
from evals.metrics.common import BootstrapSettings, CellKey, ClusterSums, MetricRow
from evals.metrics.correlation import Correlation, correlation_cluster_sums, correlation_metrics
from evals.prompts import Candidate, EvalPrompt
from evals.protocol import Headline
from evals.scoring import AnswerScores
from schemas.custom import CorrelationSpec
from schemas.errors import DataError
from schemas.tables import CORRELATION_SAMPLE_FIELDS


@dataclass(frozen=True, kw_only=True)
class CorrelationItem(CustomItem):
    """A row with its reference statistic."""

    reference: float


class CorrelationBenchmark(CustomBenchmark):
    """A ``correlation`` benchmark of a job."""

    kind = "correlation"
    columns = tuple(CORRELATION_SAMPLE_FIELDS)
    score_columns = ("corr_p_target", "candidate_probs")
    headlines = (Headline("pearson_r", "fisher_z", "ρ"),)
    spec: CorrelationSpec

    def __init__(self, spec: CorrelationSpec, data: Any, *, index: int = 0) -> None:
        super().__init__(spec, data, index=index)
        means = tuple((f"mean_p_{option.label.lower()}", f"_p_{i}") for i, option in enumerate(spec.options))
        self.correlation = Correlation(
            x="corr_p_target", reference="corr_reference", scale=1.0, means=means, what=self.what
        )
        descriptions = {
            "pearson_r": f"Pearson ρ over clusters between p_{spec.target} and {spec.reference_column}.",
            **{
                m: f"Mean normalised probability of {o.label!r}." for (m, _), o in zip(means, spec.options, strict=True)
            },
        }
        self.metric_descriptions = MappingProxyType(descriptions)

    def builtin_conditions(self) -> dict[str, Condition]:
        conditions = super().builtin_conditions()
        if self.spec.match_stats is not None:
            conditions["Q+MatchStats"] = Condition("Q+MatchStats", self.spec.match_stats, match_stats=True)
        return conditions

    def templates(self) -> dict[str, str | None]:
        spec = self.spec
        forms = {f"options[{i}].forms": " ".join(o.forms) for i, o in enumerate(spec.options)}
        return {**super().templates(), **forms, "match_stats": spec.match_stats}

    def column_roles(self) -> dict[str, str | None]:
        spec = self.spec
        return {**super().column_roles(), "id_column": spec.id_column, "reference_column": spec.reference_column}

    def parse_row(self, file: DataFile, row: DataRow) -> CorrelationItem:
        spec = self.spec
        raw = self.value(file, row, spec.reference_column)
        try:
            reference = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"{file.where(row, spec.reference_column)}: must be a number, got {raw!r}") from None
        if not math.isfinite(reference):
            raise DataError(f"{file.where(row, spec.reference_column)}: must be finite, got {raw!r}")
        item_id = str(self.value(file, row, spec.id_column)) if spec.id_column else str(row.number)
        candidates = tuple(
            Candidate(option.label, tuple(render(form, file, row) for form in option.forms)) for option in spec.options
        )
        match_stats = render(spec.match_stats, file, row) if spec.match_stats else None
        common = self.common(file, row, item_id=item_id)
        return CorrelationItem(**common, candidates=candidates, match_stats=match_stats, reference=reference)

    def select(self, items: list[CustomItem], file: DataFile) -> list[CustomItem]:
        self.unique_ids(items, file, self.spec.id_column)
        first: dict[str, CorrelationItem] = {}
        for item in items:
            assert isinstance(item, CorrelationItem)  # made by parse_row
            seen = first.setdefault(item.cluster, item)
            if seen.reference != item.reference:
                raise DataError(
                    f"{file.source}: rows {seen.row} and {item.row} are one cluster ({item.cluster!r}) but give "
                    f"{self.spec.reference_column!r} as {seen.reference} and {item.reference}; one value per cluster"
                )
        return super().select(items, file)

    def sample_columns(self, prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
        item = prompt.item
        if not isinstance(item, CorrelationItem):
            raise TypeError(f"expected a CorrelationItem, got {type(item).__name__}")
        return {
            "corr_reference": item.reference,
            "corr_p_target": scores.prob(self.spec.target) if scores else None,
        }

    def _with_option_probs(self, samples: pl.DataFrame) -> pl.DataFrame:
        probs = pl.col("candidate_probs")
        return samples.with_columns(
            probs.list.get(i, null_on_oob=True).alias(c) for i, (_, c) in enumerate(self.correlation.means)
        )

    def metrics(self, samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
        return correlation_metrics(self._with_option_probs(samples), key, settings, self.correlation)

    def cluster_sums(self, samples: pl.DataFrame, metric: str, method: str = "expected") -> ClusterSums:
        return correlation_cluster_sums(self._with_option_probs(samples), self.correlation, metric, method)
