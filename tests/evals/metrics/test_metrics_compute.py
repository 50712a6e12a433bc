"""compute_metrics as a whole: output schema, determinism, seeding, validation, calibration under the null."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from evals.metrics import compute_metrics
from schemas.errors import InvalidInputError
from schemas.tables import METRIC_DESCRIPTIONS, METRICS_SCHEMA

MakeFrame = Callable[[Sequence[dict[str, Any]]], pl.DataFrame]
MakeRow = Callable[..., dict[str, Any]]
MakeRows = Callable[..., list[dict[str, Any]]]
Pick = Callable[..., dict[str, Any]]

_POLARS_TYPES = {"string": pl.String, "double": pl.Float64, "int64": pl.Int64}


def _unbiased_bbq(seed: int, templates: int = 150, rows_per_template: int = 4) -> pl.DataFrame:
    """Answers drawn independently of the stereotype: p(a), p(b), p(c) ~ Dirichlet(1, 1, 1).

    Unknown option c, biased option a; a disambiguated row's correct answer is a or b at random.
    """
    rng = np.random.default_rng(seed)
    n = templates * rows_per_template
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    labels = np.array(["a", "b", "c"])
    context = np.where(np.arange(n) % 2 == 0, "ambig", "disambig")
    label_index = np.where(context == "ambig", 2, rng.integers(0, 2, size=n))
    return pl.DataFrame(
        {
            "model": "m",
            "model_labels": "{}",
            "benchmark": "bbq",
            "condition": "Q",
            "item_id": [f"Age/{i}" for i in range(n)],
            "category": "Age",
            "cluster": [f"Age/{i // rows_per_template}" for i in range(n)],
            "chosen": labels[probs.argmax(axis=1)],
            "bbq_context_condition": context,
            "bbq_label": labels[label_index],
            "bbq_unknown": "c",
            "bbq_biased": "a",
            "p_correct": probs[np.arange(n), label_index],
            "p_unknown": probs[:, 2],
            "p_biased": probs[:, 0],
        }
    )


def _unbiased_lawschool(seed: int, students: int = 80) -> pl.DataFrame:
    """p_yes drawn independently of race for each of a student's two presentations."""
    rng = np.random.default_rng(seed)
    p_yes = rng.uniform(size=2 * students)
    return pl.DataFrame(
        {
            "model": "m",
            "model_labels": "{}",
            "benchmark": "lawschool",
            "condition": "Q",
            "item_id": [str(i // 2) for i in range(2 * students)],
            "variant": ["Black", "white"] * students,
            "sample": pl.Series([0] * (2 * students), dtype=pl.Int32),
            "cluster": [str(i // 2) for i in range(2 * students)],
            "p_yes": p_yes,
            "chosen": np.where(p_yes > 0.5, "yes", "no"),
        }
    )


@pytest.fixture
def mixed(make_frame: MakeFrame, make_winogender_row: MakeRow) -> pl.DataFrame:
    winogender = make_frame(
        [make_winogender_row(f"occupation{i}", 0.1 * i, 0.9 - 0.1 * i, 10.0 * i + 3) for i in range(1, 9)]
    )
    return pl.concat(
        [_unbiased_bbq(0, templates=12), winogender, _unbiased_lawschool(0, students=10)], how="diagonal_relaxed"
    )


def test_output_has_exactly_the_metrics_schema(mixed: pl.DataFrame) -> None:
    metrics = compute_metrics(mixed, resamples=50)
    assert metrics.columns == METRICS_SCHEMA.names
    for field in METRICS_SCHEMA:
        assert metrics.schema[field.name] == _POLARS_TYPES[str(field.type)], field.name
    for field in METRICS_SCHEMA:
        if not field.nullable:
            assert metrics.get_column(field.name).null_count() == 0, field.name
    assert set(metrics["metric"].to_list()) <= set(METRIC_DESCRIPTIONS)
    assert set(metrics["benchmark"].unique().to_list()) == {"bbq", "winogender", "lawschool"}
    assert set(metrics["ci_method"].unique().to_list()) == {"bootstrap", "fisher_z", "none"}
    assert (metrics["confidence"] == 0.95).all()


def test_empty_samples_give_an_empty_metrics_table(mixed: pl.DataFrame) -> None:
    metrics = compute_metrics(mixed.clear())
    assert metrics.height == 0
    assert metrics.columns == METRICS_SCHEMA.names


def test_same_seed_same_frame_other_seed_other_intervals(mixed: pl.DataFrame) -> None:
    first = compute_metrics(mixed, resamples=200, seed=7)
    assert_frame_equal(first, compute_metrics(mixed, resamples=200, seed=7))
    other = compute_metrics(mixed, resamples=200, seed=8)
    assert_frame_equal(first.drop("ci_low", "ci_high"), other.drop("ci_low", "ci_high"))
    booted = first["ci_method"] == "bootstrap"
    assert (first.filter(booted)["ci_low"] != other.filter(booted)["ci_low"]).any()


def test_adding_a_model_or_condition_leaves_other_intervals_unchanged(mixed: pl.DataFrame) -> None:
    alone = compute_metrics(mixed, resamples=200, seed=3)
    extra = pl.concat([mixed, mixed.with_columns(model=pl.lit("other")), mixed.with_columns(condition=pl.lit("Q+IF"))])
    together = compute_metrics(extra, resamples=200, seed=3)
    mine = together.filter(pl.col("model") == "m", pl.col("condition") == "Q")
    assert_frame_equal(alone, mine)


def test_confidence_sets_the_interval_width(mixed: pl.DataFrame) -> None:
    narrow = compute_metrics(mixed, resamples=300, confidence=0.5)
    wide = compute_metrics(mixed, resamples=300, confidence=0.99)
    booted = (narrow["ci_method"] == "bootstrap") & narrow["value"].is_not_nan()
    width_narrow = (narrow["ci_high"] - narrow["ci_low"]).filter(booted)
    width_wide = (wide["ci_high"] - wide["ci_low"]).filter(booted)
    assert (width_narrow <= width_wide + 1e-12).all()
    assert (narrow["confidence"] == 0.5).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"resamples": -1}, "resamples must be an integer ≥ 0, got -1"),
        ({"resamples": 1.5}, "resamples must be an integer"),
        ({"confidence": 1.0}, "confidence must be a number strictly between 0 and 1, got 1.0"),
        ({"confidence": 0}, "confidence must be"),
        ({"seed": -3}, "seed must be an integer ≥ 0, got -3"),
    ],
)
def test_bad_settings_are_rejected(mixed: pl.DataFrame, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        compute_metrics(mixed, **settings)


def test_unknown_benchmark_and_missing_columns_are_named(mixed: pl.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="unknown benchmark"):
        compute_metrics(mixed.with_columns(benchmark=pl.lit("mmlu")))
    with pytest.raises(InvalidInputError, match="model_labels"):
        compute_metrics(mixed.drop("model_labels"))


def _contains_zero(row: dict[str, float]) -> bool:
    return row["ci_low"] <= 0.0 <= row["ci_high"]


def test_unbiased_answerer_bias_interval_contains_zero(pick: Pick) -> None:
    hits = {(metric, method): 0 for metric in ("bias_ambig", "bias_disambig") for method in ("argmax", "expected")}
    for run in range(100):
        metrics = compute_metrics(_unbiased_bbq(1000 + run), resamples=1000, seed=run)
        for metric, method in hits:
            hits[metric, method] += _contains_zero(pick(metrics, metric, method=method))
    print("runs out of 100 whose interval contains 0:", hits)
    assert all(count >= 90 for count in hits.values()), hits
    # ... and not trivially: the intervals are not so wide that they always contain 0.
    assert any(count < 100 for count in hits.values()), hits


def test_unbiased_admissions_parity_interval_contains_zero(pick: Pick) -> None:
    hits = {"parity_difference": 0, "admission_rate_difference": 0}
    for run in range(100):
        metrics = compute_metrics(_unbiased_lawschool(2000 + run), resamples=1000, seed=run)
        for metric in hits:
            hits[metric] += _contains_zero(pick(metrics, metric))
    print("runs out of 100 whose interval contains 0:", hits)
    assert all(count >= 90 for count in hits.values()), hits
