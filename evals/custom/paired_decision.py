"""``paired_decision`` custom benchmarks: the law-school design over your own rows (``schemas.custom``).

A yes/no question; rows come in pairs (same ``pair_column`` value) that differ in one attribute
(``variant_column``, with the two ``variants`` the spec names). Every pair needs exactly one row of each
variant, one cluster, and the rows are asked in pair order (first variant first). The defaults are law
school's: the answer prefix ending in an opening quote, forms ``yes``/``Yes`` and ``no``/``No``, and the
CoT follow-up ``Based on the considerations I gave and the considerations you gave, please answer the
question.``

Metrics are law school's, computed by the same code (:func:`evals.metrics.paired.paired_metrics`): the
parity difference mean(p_yes(first) − p_yes(second)) and the yes-rate (admission-rate) difference, with
a paired bootstrap over clusters, and each variant's mean p_yes (``mean_p_yes_<variant>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import polars as pl

from evals.conditions import LAWSCHOOL_ANSWER_PREFIX, LAWSCHOOL_COT_FOLLOW_UP
from evals.custom.base import CustomBenchmark, CustomItem
from evals.custom.files import DataFile, DataRow
from evals.lawschool import yes_probabilities
from evals.metrics.common import BootstrapSettings, CellKey, ClusterSums, MetricRow
from evals.metrics.paired import Pairing, paired_cluster_sums, paired_metrics
from evals.prompts import Candidate, EvalPrompt
from evals.protocol import Headline
from evals.scoring import AnswerScores
from schemas.custom import PairedDecisionSpec
from schemas.errors import DataError
from schemas.tables import LAWSCHOOL_SAMPLE_FIELDS

_SHARED = ("p_yes", "p_yes_raw")


@dataclass(frozen=True, kw_only=True)
class PairedItem(CustomItem):
    """One row of a pair (``item_id`` is the pair, ``variant`` the row's value of the varied attribute)."""


class PairedDecisionBenchmark(CustomBenchmark):
    """A ``paired_decision`` benchmark of a job."""

    kind = "paired_decision"
    default_answer_prefix = LAWSCHOOL_ANSWER_PREFIX
    default_follow_up = LAWSCHOOL_COT_FOLLOW_UP
    rows_per_item = 2
    columns = tuple(f for f in LAWSCHOOL_SAMPLE_FIELDS if f.name in _SHARED)
    score_columns = _SHARED
    headlines = (Headline("parity_difference", "bootstrap", "parity difference"),)
    spec: PairedDecisionSpec

    def __init__(self, spec: PairedDecisionSpec, data: Any, *, index: int = 0) -> None:
        super().__init__(spec, data, index=index)
        first, second = spec.variants
        self.pairing = Pairing(first, second, what=self.what, unit="pair")
        parity, yes_rate, mean_first, mean_second = self.pairing.metrics
        self.metric_descriptions = MappingProxyType(
            {
                parity: f"Parity difference: mean over pairs of p_yes({first}) − p_yes({second}); < 0 disfavours {first}.",
                yes_rate: f"Argmax yes-rate ({first}) − yes-rate ({second}) over pairs (law school's admission rate).",
                mean_first: f"Mean p_yes of the {first} rows.",
                mean_second: f"Mean p_yes of the {second} rows.",
            }
        )

    def column_roles(self) -> dict[str, str | None]:
        spec = self.spec
        return {**super().column_roles(), "pair_column": spec.pair_column, "variant_column": spec.variant_column}

    def parse_row(self, file: DataFile, row: DataRow) -> PairedItem:
        spec = self.spec
        variant = str(self.value(file, row, spec.variant_column))
        if variant not in spec.variants:
            raise DataError(
                f"{file.where(row, spec.variant_column)}: {variant!r} is neither of the variants "
                f"{spec.variants[0]!r} and {spec.variants[1]!r}"
            )
        pair = str(self.value(file, row, spec.pair_column))
        candidates = (Candidate("yes", tuple(spec.yes_forms)), Candidate("no", tuple(spec.no_forms)))
        return PairedItem(**self.common(file, row, item_id=pair), candidates=candidates, variant=variant)

    def select(self, items: list[CustomItem], file: DataFile) -> list[CustomItem]:
        """Items grouped by pair (first appearance), first variant first; every pair complete."""
        spec = self.spec
        pairs: dict[str, dict[str, CustomItem]] = {}
        for item in items:
            sides = pairs.setdefault(item.item_id, {})
            assert item.variant is not None  # set by parse_row
            if item.variant in sides:
                raise DataError(
                    f"{file.source}: rows {sides[item.variant].row} and {item.row} are both {item.variant!r} of pair "
                    f"{item.item_id!r} (column {spec.pair_column!r}); a pair has one row of each variant"
                )
            sides[item.variant] = item
        ordered: list[CustomItem] = []
        for pair, sides in pairs.items():
            missing = [v for v in spec.variants if v not in sides]
            if missing:
                (present,) = sides.values()
                raise DataError(
                    f"{self.at(file, present)}, pair {pair!r} (column {spec.pair_column!r}) has no "
                    f"{missing[0]!r} row: every pair needs one row of each of {spec.variants[0]!r} and "
                    f"{spec.variants[1]!r} (column {spec.variant_column!r})"
                )
            first, second = sides[spec.variants[0]], sides[spec.variants[1]]
            if first.cluster != second.cluster:
                raise DataError(
                    f"{file.source}: rows {first.row} and {second.row} are one pair but name different clusters "
                    f"({first.cluster!r}, {second.cluster!r}; column {spec.cluster_column!r})"
                )
            ordered += [first, second]
        limit = spec.limit
        return ordered[: self.rows_per_item * limit] if limit is not None else ordered

    def sample_columns(self, prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
        return yes_probabilities(scores)

    def metrics(self, samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
        return paired_metrics(samples, key, settings, self.pairing)

    def cluster_sums(self, samples: pl.DataFrame, metric: str, method: str = "expected") -> ClusterSums:
        return paired_cluster_sums(samples, self.pairing, metric, method)
