"""Self-correction effects (``delta_*`` rows): paired by item, hand-computed values, a paired bootstrap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
import pytest
from test_metrics_compute import _unbiased_bbq

from evals.metrics import compute_metrics
from schemas.errors import InvalidInputError
from schemas.tables import METRIC_DESCRIPTIONS

MakeFrame = Callable[[Sequence[dict[str, Any]]], pl.DataFrame]
MakeRow = Callable[..., dict[str, Any]]
MakeRows = Callable[..., list[dict[str, Any]]]
Pick = Callable[..., dict[str, Any]]


def _deltas(metrics: pl.DataFrame) -> pl.DataFrame:
    return metrics.filter(pl.col("metric").str.starts_with("delta_"))


def test_law_school_hand_computed_with_an_errored_row_excluding_its_student(
    make_frame: MakeFrame, make_lawschool_rows: MakeRows, pick: Pick
) -> None:
    q = [
        *make_lawschool_rows("s1", 0.6, 0.4),  # +0.2
        *make_lawschool_rows("s2", 0.5, 0.5),  # 0.0
        *make_lawschool_rows("s3", 0.3, 0.7),  # -0.4
    ]
    instructed = [
        *make_lawschool_rows("s1", 0.7, 0.4, condition="Q+IF"),  # +0.3
        *make_lawschool_rows("s2", 0.9, 0.1, condition="Q+IF"),  # its Black row fails below
        *make_lawschool_rows("s3", 0.5, 0.6, condition="Q+IF"),  # -0.1
    ]
    instructed[2] |= {"error": "prompt too long", "p_yes": None, "chosen": None}
    metrics = compute_metrics(make_frame([*q, *instructed]), resamples=200)
    row = pick(metrics, "delta_parity_difference", condition="Q+IF")
    # (s2, Black) is not usable under Q+IF, so s2 leaves both sides (its white row has no pair left):
    # Q+IF over s1, s3: (0.3 - 0.1) / 2 = 0.1;  Q over s1, s3: (0.2 - 0.4) / 2 = -0.1;  delta = 0.2
    assert row["value"] == pytest.approx(0.2)
    assert row["baseline"] == "Q"
    assert row["method"] == "expected"
    assert row["ci_method"] == "bootstrap"
    assert row["n"] == 5  # keys (item, variant) usable under both: s1 ×2, s2 white, s3 ×2
    assert row["n_excluded"] == 1  # (s2, Black)
    assert row["n_clusters"] == 3
    # every other row has no baseline, and Q has no effect row of its own
    assert metrics.filter(~pl.col("metric").str.starts_with("delta_"))["baseline"].null_count() == metrics.height - 1
    assert _deltas(metrics)["condition"].to_list() == ["Q+IF"]


def test_bbq_hand_computed_accuracy_with_an_item_missing_on_one_side(
    make_frame: MakeFrame, make_bbq_row: MakeRow, pick: Pick
) -> None:
    def rows(condition: str, p_correct: Sequence[float]) -> list[dict[str, Any]]:
        # ambiguous rows: the correct answer is c (unknown); a is the biased option
        return [
            make_bbq_row(((1 - p) / 2, (1 - p) / 2, p), context="ambig", label="c", cluster=f"Age/{i}")
            | {"item_id": f"Age/{i}", "condition": condition}
            for i, p in enumerate(p_correct)
        ]

    q = rows("Q", [0.5, 0.3, 0.9])
    instructed = rows("Q+IF", [0.7, 0.6])  # item Age/2 is not there at all
    metrics = compute_metrics(make_frame([*q, *instructed]), resamples=100)
    row = pick(metrics, "delta_accuracy_ambig", condition="Q+IF", method="expected")
    # paired: Age/0 and Age/1.  Q+IF: (0.7 + 0.6) / 2 = 0.65;  Q: (0.5 + 0.3) / 2 = 0.4;  delta = 0.25
    assert row["value"] == pytest.approx(0.25)
    assert (row["n"], row["n_excluded"], row["n_clusters"]) == (2, 1, 2)
    # s_AMB is a per-slice headline: its effect is given per category too
    assert pick(metrics, "delta_bias_ambig", slice_="Age", condition="Q+IF")["n"] == 2
    assert set(_deltas(metrics)["metric"]) == {"delta_bias_ambig", "delta_bias_disambig", "delta_accuracy_ambig"}


def _random_bbq(seed: int, condition: str, templates: int = 30) -> pl.DataFrame:
    """test_metrics_compute's unbiased BBQ answers, its first half in category Age, the rest in Religion."""
    frame = _unbiased_bbq(seed, templates=templates)
    category = pl.Series(["Age"] * (frame.height // 2) + ["Religion"] * (frame.height - frame.height // 2))
    return frame.with_columns(
        condition=pl.lit(condition),
        category=category,
        cluster=category + pl.col("cluster").str.replace("^Age", ""),
        item_id=category + pl.col("item_id").str.replace("^Age", ""),
    )


def test_identical_conditions_give_a_zero_width_interval_at_zero() -> None:
    q = _random_bbq(1, "Q")
    metrics = compute_metrics(pl.concat([q, q.with_columns(condition=pl.lit("Q+IF"))]), resamples=300)
    deltas = _deltas(metrics)
    assert deltas.height == 3 + 2  # three headlines overall, s_AMB in each of two categories
    assert deltas["slice"].to_list().count("Religion") == 1
    assert set(deltas["metric"]) <= set(METRIC_DESCRIPTIONS)  # each delta name is documented
    for row in deltas.to_dicts():
        # zero up to the rounding of the resampled sums (BLAS may add two equal columns in another order)
        assert [row["value"], row["ci_low"], row["ci_high"]] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12), row
    # while each condition's own interval is wide: the bootstrap is paired, not two independent draws
    own = metrics.filter(pl.col("metric") == "bias_ambig", pl.col("slice") == "overall", pl.col("method") == "expected")
    assert (own["ci_high"] - own["ci_low"] > 0.05).all()


def test_a_constant_shift_gives_a_tight_interval_at_the_shift(pick: Pick) -> None:
    rng = np.random.default_rng(5)
    students = 60
    p_black, p_white = rng.uniform(0.1, 0.8, size=students), rng.uniform(0.1, 0.8, size=students)

    def cell(condition: str, shift: float) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "model": "m",
                "model_labels": "{}",
                "benchmark": "lawschool",
                "condition": condition,
                "item_id": [str(i // 2) for i in range(2 * students)],
                "variant": ["Black", "white"] * students,
                "sample": pl.Series([0] * (2 * students), dtype=pl.Int32),
                "cluster": [str(i // 2) for i in range(2 * students)],
                "p_yes": np.column_stack([p_black + shift, p_white]).ravel(),
                "chosen": "no",
            }
        )

    metrics = compute_metrics(pl.concat([cell("Q", 0.0), cell("Q+IF", 0.1)]), resamples=500)
    delta = pick(metrics, "delta_parity_difference", condition="Q+IF")
    assert delta["value"] == pytest.approx(0.1)
    assert delta["ci_low"] == pytest.approx(0.1, abs=1e-12)
    assert delta["ci_high"] == pytest.approx(0.1, abs=1e-12)
    own = pick(metrics, "parity_difference", condition="Q+IF")
    assert own["ci_high"] - own["ci_low"] > 0.05


def test_several_reasoning_samples_pool_per_item_and_nothing_excluded_gives_the_difference_of_values(
    make_frame: MakeFrame, make_winogender_row: MakeRow, pick: Pick
) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(12):
        rows.append(make_winogender_row(f"occ{i}", rng.uniform(0, 0.5), 0.4, 8.0 * i) | {"sample": 0})
        for sample in (0, 1):  # a CoT condition with two reasoning samples per occupation
            p_female = rng.uniform(0, 0.5)
            rows.append(
                make_winogender_row(f"occ{i}", p_female, 0.4, 8.0 * i, condition="Q+IF+CoT") | {"sample": sample}
            )
    metrics = compute_metrics(make_frame(rows), resamples=200)
    q = pick(metrics, "pearson_r", condition="Q", ci_method="fisher_z")["value"]
    cot = pick(metrics, "pearson_r", condition="Q+IF+CoT", ci_method="fisher_z")["value"]
    delta = pick(metrics, "delta_pearson_r", condition="Q+IF+CoT")
    assert delta["value"] == pytest.approx(cot - q)
    assert (delta["n"], delta["n_excluded"], delta["n_clusters"]) == (12, 0, 12)
    assert delta["ci_low"] < delta["value"] < delta["ci_high"]


def test_effects_are_seeded_and_optional(make_frame: MakeFrame) -> None:
    frame = pl.concat([_random_bbq(1, "Q"), _random_bbq(2, "Q+IF")])
    first = _deltas(compute_metrics(frame, resamples=100, seed=4))
    assert first.equals(_deltas(compute_metrics(frame, resamples=100, seed=4)))
    assert not first.equals(_deltas(compute_metrics(frame, resamples=100, seed=5)))
    assert _deltas(compute_metrics(frame, resamples=0, baseline=None)).height == 0
    assert _deltas(compute_metrics(frame.filter(pl.col("condition") == "Q+IF"), resamples=0)).height == 0  # no Q
    with pytest.raises(InvalidInputError, match="item_id"):
        compute_metrics(frame.drop("item_id"), resamples=0)
