"""Winogender metrics: Pearson ρ over occupations with Fisher-z and bootstrap intervals (SPEC §4)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
import pytest
from numpy.typing import NDArray
from scipy import stats

from evals.metrics import compute_metrics
from schemas.errors import InvalidInputError

MakeFrame = Callable[[Sequence[dict[str, Any]]], pl.DataFrame]
MakeRow = Callable[..., dict[str, Any]]
MakeRows = Callable[..., list[dict[str, Any]]]
Pick = Callable[..., dict[str, Any]]

# (occupation, p_female, p_male, bls_pct_female)
OCCUPATIONS = [
    ("nurse", 0.80, 0.15, 89.58),
    ("secretary", 0.70, 0.25, 93.0),
    ("engineer", 0.10, 0.85, 12.0),
    ("carpenter", 0.05, 0.90, 1.5),
    ("teacher", 0.55, 0.40, 73.0),
    ("doctor", 0.30, 0.60, 38.0),
    ("cashier", 0.40, 0.50, 71.0),
    ("pilot", 0.15, 0.80, 5.0),
]


@pytest.fixture
def table(make_frame: MakeFrame, make_winogender_row: MakeRow) -> pl.DataFrame:
    rows = [make_winogender_row(*occupation) for occupation in OCCUPATIONS]
    # A second CoT sample for the nurse: the occupation's p_female becomes (.80 + .60) / 2 = .70.
    rows.append(make_winogender_row("nurse", 0.60, 0.30, 89.58))
    return make_frame(rows)


def _points() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = [p for _, p, _, _ in OCCUPATIONS]
    x[0] = 0.70
    y = [bls / 100 for *_, bls in OCCUPATIONS]
    return np.array(x), np.array(y)


def test_pearson_matches_scipy_on_occupation_means(table: pl.DataFrame, pick: Pick) -> None:
    metrics = compute_metrics(table, resamples=500, seed=3)
    x, y = _points()
    reference = stats.pearsonr(x, y)
    fisher = pick(metrics, "pearson_r", ci_method="fisher_z")
    boot = pick(metrics, "pearson_r", ci_method="bootstrap")
    assert fisher["value"] == pytest.approx(reference.statistic, abs=1e-12)
    assert boot["value"] == fisher["value"]
    # 9 rows of 8 occupations.
    assert (fisher["n"], fisher["n_clusters"], fisher["n_excluded"]) == (9, 8, 0)
    assert fisher["method"] == boot["method"] == "expected"
    assert boot["ci_low"] <= boot["value"] <= boot["ci_high"]


def test_fisher_interval_by_hand(table: pl.DataFrame, pick: Pick) -> None:
    metrics = compute_metrics(table, resamples=0)
    x, y = _points()
    r = float(np.corrcoef(x, y)[0, 1])
    # z = atanh r ± 1.959964 / √(8 − 3)
    half = 1.959963984540054 / math.sqrt(5)
    fisher = pick(metrics, "pearson_r", ci_method="fisher_z")
    assert fisher["ci_low"] == pytest.approx(math.tanh(math.atanh(r) - half), abs=1e-12)
    assert fisher["ci_high"] == pytest.approx(math.tanh(math.atanh(r) + half), abs=1e-12)
    ci = stats.pearsonr(x, y).confidence_interval(0.95)
    assert (fisher["ci_low"], fisher["ci_high"]) == pytest.approx((ci.low, ci.high), abs=1e-9)
    # Without resamples the bootstrap row remains, without an interval.
    none = pick(metrics, "pearson_r", ci_method="none")
    assert none["value"] == fisher["value"]
    assert math.isnan(none["ci_low"])


def test_means_over_rows(table: pl.DataFrame, pick: Pick) -> None:
    metrics = compute_metrics(table, resamples=200)
    p_female = [p for _, p, _, _ in OCCUPATIONS] + [0.60]
    p_male = [p for _, _, p, _ in OCCUPATIONS] + [0.30]
    assert pick(metrics, "mean_p_female")["value"] == pytest.approx(sum(p_female) / 9)
    assert pick(metrics, "mean_p_male")["value"] == pytest.approx(sum(p_male) / 9)
    neutral = [1 - f - m for f, m in zip(p_female, p_male, strict=True)]
    assert pick(metrics, "mean_p_neutral")["value"] == pytest.approx(sum(neutral) / 9)
    assert pick(metrics, "mean_p_female")["ci_method"] == "bootstrap"


def test_constant_p_female_gives_nan_correlation(
    make_frame: MakeFrame, make_winogender_row: MakeRow, pick: Pick
) -> None:
    frame = make_frame([make_winogender_row(o, 0.5, 0.4, bls) for o, _, _, bls in OCCUPATIONS])
    metrics = compute_metrics(frame, resamples=100)
    for ci_method in ("fisher_z", "bootstrap"):
        row = pick(metrics, "pearson_r", ci_method=ci_method)
        assert math.isnan(row["value"])
        assert math.isnan(row["ci_low"])


def test_failed_row_is_excluded_and_counted(make_frame: MakeFrame, make_winogender_row: MakeRow, pick: Pick) -> None:
    rows = [make_winogender_row(*occupation) for occupation in OCCUPATIONS]
    rows[2]["p_female"] = None
    metrics = compute_metrics(make_frame(rows), resamples=0)
    fisher = pick(metrics, "pearson_r", ci_method="fisher_z")
    x = [p for i, (_, p, _, _) in enumerate(OCCUPATIONS) if i != 2]
    y = [bls / 100 for i, (*_, bls) in enumerate(OCCUPATIONS) if i != 2]
    assert fisher["value"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert (fisher["n"], fisher["n_clusters"], fisher["n_excluded"]) == (7, 7, 1)


def test_inconsistent_bls_share_is_rejected(make_frame: MakeFrame, make_winogender_row: MakeRow) -> None:
    frame = make_frame([make_winogender_row("nurse", 0.8, 0.1, 89.58), make_winogender_row("nurse", 0.7, 0.2, 50.0)])
    with pytest.raises(InvalidInputError, match="'nurse' has different wg_bls_pct_female"):
        compute_metrics(frame)
