"""A third-party benchmark for the tests: what an installed package adds through the entry point group.

``coinflip`` asks, for each of ``n`` coins, whether it lands heads; its one metric is the mean
probability of "yes". The tests put this file and a ``*.dist-info/entry_points.txt`` naming it on
``sys.path`` (no pip install), as ``pip install`` of a package declaring
``[project.entry-points."moralscope.benchmarks"] coinflip = "moralscope_coinflip:BENCHMARK"`` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from evals.conditions import Condition
from evals.datasets import DatasetSources
from evals.metrics.common import OVERALL, BootstrapSettings, CellKey, MetricRow, bootstrap_estimate, metric_row
from evals.prompts import Candidate, EvalPrompt, condition_turns
from evals.protocol import Benchmark, Headline
from evals.scoring import AnswerScores
from evals.stats import ratio_of_sums


class CoinflipSpec(BaseModel):
    """Settings of the coinflip benchmark."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    n: int = Field(2, ge=1, le=10, description="Coins to ask about.")


@dataclass(frozen=True)
class Coin:
    index: int

    @property
    def side(self) -> str:
        return "heads" if self.index % 2 == 0 else "tails"


class Coinflip(Benchmark):
    name = "coinflip"
    title = "Coin flips"
    spec_model = CoinflipSpec
    conditions = MappingProxyType({"Q": Condition("Q"), "Q+IF": Condition("Q+IF", "Be fair to both sides.")})
    columns = (
        pa.field("coin_side", pa.string(), metadata={"description": "coinflip: the side the coin was painted."}),
        pa.field("coin_p_yes", pa.float64(), metadata={"description": "coinflip: normalised P(yes)."}),
    )
    score_columns = ("coin_p_yes",)
    metric_descriptions = MappingProxyType({"mean_p_yes": "coinflip: mean normalised P(yes) over coins."})
    headlines = (Headline("mean_p_yes", "bootstrap", "coin P(yes)"),)

    def planned_items(self, spec: CoinflipSpec) -> int:
        return spec.n

    def load_items(self, spec: CoinflipSpec, sources: DatasetSources, seed: int) -> list[Coin]:
        return [Coin(i) for i in range(spec.n)]

    def render(self, item: Coin, condition: Condition) -> list[EvalPrompt]:
        human = f"Coin {item.index} is tossed. Will it land heads? Answer yes or no."
        if condition.instruction:
            human = f"{human}\n{condition.instruction}"
        turns = condition_turns(condition, human=human, answer_prefix="My answer:", follow_up="So, yes or no?")
        key = str(item.index)
        return [EvalPrompt(self.name, condition.name, key, None, item.side, key, turns, self.candidates(item), item)]

    def candidates(self, item: Coin) -> tuple[Candidate, ...]:
        return (Candidate("yes", (" yes",)), Candidate("no", (" no",)))

    def sample_columns(self, prompt: EvalPrompt, scores: AnswerScores | None) -> dict[str, Any]:
        return {"coin_side": prompt.item.side, "coin_p_yes": scores.prob("yes") if scores else None}

    def metrics(self, samples: pl.DataFrame, key: CellKey, settings: BootstrapSettings) -> list[MetricRow]:
        used = samples.filter(pl.col("coin_p_yes").is_not_null())
        sums = np.column_stack([np.ones(used.height), used.get_column("coin_p_yes").to_numpy()])
        estimate = bootstrap_estimate(
            sums, ratio_of_sums(1, 0), key=key, slice_=OVERALL, metric="mean_p_yes", settings=settings
        )
        row = metric_row(
            key,
            slice_=OVERALL,
            metric="mean_p_yes",
            method="expected",
            estimate=estimate,
            n=used.height,
            n_clusters=used.height,
            n_excluded=samples.height - used.height,
            confidence=settings.confidence,
        )
        return [row]


BENCHMARK = Coinflip()
