"""BBQ metrics on the real upstream items (the six local categories), through the BBQ module's columns.

Simulated answerers with known scores: a stereotyped one (always the biased option) and an oracle.
This pins the contract between ``evals.bbq`` (item_id, category, cluster, bbq_* columns) and the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest

from evals import bbq
from evals.conditions import builtin_condition
from evals.datasets import DatasetSources
from evals.metrics import compute_metrics
from evals.scoring import AnswerScores
from schemas.spec import BbqSpec

CATEGORIES = ["Age", "Disability_status", "Nationality", "Physical_appearance", "Religion", "Sexual_orientation"]
Pick = Callable[..., dict[str, Any]]
Policy = Callable[[bbq.BbqItem], int]
"""Which option (0, 1, 2) the simulated model puts 0.8 of its probability on (0.1 on each other)."""


@pytest.fixture(scope="module")
def items() -> list[bbq.BbqItem]:
    return bbq.load_items(BbqSpec(categories=CATEGORIES), DatasetSources(download=False), 0)


def _samples(items: list[bbq.BbqItem], policy: Policy) -> pl.DataFrame:
    condition = builtin_condition("bbq", "Q")
    rows = []
    for item in items:
        (prompt,) = bbq.render(item, condition)
        probs = [0.1, 0.1, 0.1]
        probs[policy(item)] = 0.8
        scores = AnswerScores(labels=bbq.LABELS, logprobs=tuple(np.log(probs)), probs=tuple(probs), mass=1.0)
        rows.append(
            {
                "model": "sim",
                "model_labels": "{}",
                "benchmark": prompt.benchmark,
                "condition": prompt.condition,
                "item_id": prompt.item_id,
                "category": prompt.category,
                "cluster": prompt.cluster,
                "chosen": scores.chosen,
                **bbq.sample_columns(prompt, scores),
            }
        )
    return pl.DataFrame(rows)


def _stereotyped(item: bbq.BbqItem) -> int:
    # Undetermined rows: option a (they are excluded from the bias scores anyway).
    return item.biased if item.biased is not None else 0


def test_stereotyped_answerer_scores_one(items: list[bbq.BbqItem], pick: Pick) -> None:
    metrics = compute_metrics(_samples(items, _stereotyped), resamples=200)
    assert metrics.get_column("slice").unique(maintain_order=True).to_list() == [*CATEGORIES, "overall"]
    for slice_ in [*CATEGORIES, "overall"]:
        for metric in ("bias_ambig", "bias_disambig"):
            row = pick(metrics, metric, slice_=slice_, method="argmax")
            assert row["value"] == pytest.approx(1.0), (slice_, metric)
            assert row["n_clusters"] > 1
        # expected: n_biased = Σ .8, n_non_unknown = Σ .9 → s_DIS = 2 · .8/.9 − 1 = 7/9;
        # ambiguous accuracy = mean p(unknown) = .1 → s_AMB = .9 · 7/9 = .7
        assert pick(metrics, "bias_disambig", slice_=slice_, method="expected")["value"] == pytest.approx(7 / 9)
        assert pick(metrics, "bias_ambig", slice_=slice_, method="expected")["value"] == pytest.approx(0.7)
        assert pick(metrics, "accuracy_ambig", slice_=slice_, method="argmax")["value"] == pytest.approx(0.0, abs=0.01)
    undetermined = bbq.undetermined(items)
    overall = pick(metrics, "n_undetermined", method="argmax")
    assert overall["value"] == len(undetermined)
    assert overall["n"] == len(items)
    assert pick(metrics, "accuracy_ambig", method="argmax")["n"] + pick(metrics, "accuracy_disambig", method="argmax")[
        "n"
    ] == len(items)
    # Templates: one cluster per (category, question_index).
    assert pick(metrics, "n_undetermined", method="argmax")["n_clusters"] == len({i.cluster for i in items})


def test_oracle_is_accurate_and_has_no_ambiguous_bias_score(items: list[bbq.BbqItem], pick: Pick) -> None:
    metrics = compute_metrics(_samples(items, lambda item: item.label), resamples=0)
    for context in ("ambig", "disambig"):
        assert pick(metrics, f"accuracy_{context}", method="argmax")["value"] == 1.0
    # Every ambiguous answer is the unknown option: no non-unknown answer, so s_AMB is undefined.
    assert math.isnan(pick(metrics, "bias_ambig", method="argmax")["value"])
    # BBQ balances which group is the correct answer, so a correct model scores ≈ 0 in disambiguated contexts.
    assert abs(pick(metrics, "bias_disambig", method="argmax")["value"]) < 0.05
