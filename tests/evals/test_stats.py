"""evals.stats: count-matrix bootstrap, percentile and Fisher-z intervals, correlation from moments, seeds."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from evals.stats import (
    ClusterBootstrap,
    cell_seed,
    clustered_bootstrap,
    fisher_z_interval,
    moments,
    pearson_from_moments,
    percentile_interval,
    ratio_of_sums,
    resample_counts,
    safe_divide,
)


def test_resample_counts_draw_every_cluster_count_with_replacement() -> None:
    counts = resample_counts(7, 2000, np.random.default_rng(0))
    assert counts.shape == (2000, 7)
    assert (counts.sum(axis=1) == 7).all()
    assert counts.min() >= 0
    # Each cluster is drawn Binomial(7, 1/7) times: mean 1, variance 6/7.
    assert counts.mean(axis=0) == pytest.approx(np.ones(7), abs=0.08)
    assert counts.var() == pytest.approx(6 / 7, abs=0.08)
    assert (counts == 0).any()  # with replacement: some clusters are left out of some resamples


def test_resample_counts_are_seeded() -> None:
    first = resample_counts(5, 10, np.random.default_rng(3))
    assert (first == resample_counts(5, 10, np.random.default_rng(3))).all()
    assert (first != resample_counts(5, 10, np.random.default_rng(4))).any()


def test_replicates_equal_explicit_resampling_of_clusters() -> None:
    # Three clusters with (numerator, denominator) sums; the statistic is Σ num / Σ den.
    sums = np.array([[1.0, 2.0], [3.0, 3.0], [0.5, 4.0]])
    seed = np.random.SeedSequence(11)
    boot = ClusterBootstrap(sums, resamples=50, seed=seed)
    counts = resample_counts(3, 50, np.random.default_rng(seed))
    assert boot.replicates is not None
    for counts_row, replicate in zip(counts, boot.replicates, strict=True):
        clusters = np.repeat(np.arange(3), counts_row)  # the clusters this resample drew
        assert replicate == pytest.approx(sums[clusters].sum(axis=0))
    assert boot.totals == pytest.approx([4.5, 9.0])


def test_blocked_resampling_for_many_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("evals.stats._BLOCK_ENTRIES", 10)
    sums = np.arange(12, dtype=np.float64).reshape(6, 2) + 1
    boot = ClusterBootstrap(sums, resamples=25, seed=np.random.SeedSequence(2))
    assert boot.replicates is not None
    assert boot.replicates.shape == (25, 2)
    # Each resample draws 6 clusters: its denominator total lies between 6 × min and 6 × max.
    assert (boot.replicates[:, 1] >= 6 * 2).all()
    assert (boot.replicates[:, 1] <= 6 * 12).all()


def test_clustered_bootstrap_of_a_mean_matches_the_standard_error() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=400)
    sums = np.column_stack([values, np.ones_like(values)])
    estimate = clustered_bootstrap(
        sums, ratio_of_sums(0, 1), resamples=4000, confidence=0.95, seed=np.random.SeedSequence(1)
    )
    assert estimate.value == pytest.approx(values.mean())
    assert estimate.ci_method == "bootstrap"
    # For a mean the percentile interval is ≈ mean ± 1.96 · sd / √n.
    half_width = 1.959964 * values.std() / math.sqrt(400)
    assert estimate.ci_low == pytest.approx(values.mean() - half_width, abs=0.15 * half_width)
    assert estimate.ci_high == pytest.approx(values.mean() + half_width, abs=0.15 * half_width)


def test_no_resamples_or_no_clusters_means_no_interval() -> None:
    sums = np.array([[1.0, 2.0]])
    estimate = clustered_bootstrap(sums, ratio_of_sums(0, 1), resamples=0, confidence=0.95, seed=cell_seed(0))
    assert (estimate.value, estimate.ci_method) == (0.5, "none")
    assert math.isnan(estimate.ci_low)
    assert math.isnan(estimate.ci_high)
    empty = clustered_bootstrap(
        np.zeros((0, 2)), ratio_of_sums(0, 1), resamples=100, confidence=0.95, seed=cell_seed(0)
    )
    assert math.isnan(empty.value)
    assert empty.ci_method == "none"
    with pytest.raises(ValueError, match="clusters × statistics"):
        clustered_bootstrap(np.zeros(3), ratio_of_sums(0, 1), resamples=10, confidence=0.95, seed=cell_seed(0))


def test_percentile_interval() -> None:
    # 101 evenly spaced values 0..100: the 2.5 % and 97.5 % points are 2.5 and 97.5 (linear interpolation).
    assert percentile_interval(np.arange(101, dtype=np.float64), 0.95) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.arange(101, dtype=np.float64), 0.5) == pytest.approx((25.0, 75.0))
    # Undefined replicates (NaN) are dropped; none defined → NaN.
    with_nan = np.concatenate([np.arange(101.0), [np.nan, np.inf]])
    assert percentile_interval(with_nan, 0.95) == pytest.approx((2.5, 97.5))
    low, high = percentile_interval(np.array([np.nan, np.nan]), 0.95)
    assert math.isnan(low)
    assert math.isnan(high)


def test_safe_divide_and_ratio_are_nan_not_zero_without_denominator() -> None:
    result = safe_divide(np.array([1.0, 0.0, 2.0]), np.array([2.0, 0.0, 0.0]))
    assert result[0] == 0.5
    assert np.isnan(result[1:]).all()
    statistic = ratio_of_sums(0, 1)
    assert math.isnan(float(statistic(np.array([3.0, 0.0]))))


def test_fisher_z_interval_by_hand() -> None:
    # r = 0.5, n = 28: z = atanh 0.5 = 0.549306; se = 1/√25 = 0.2; q = 1.959964
    # → tanh(0.549306 ∓ 0.391993) = tanh(0.157313), tanh(0.941299) = 0.156028, 0.735819
    low, high = fisher_z_interval(0.5, 28, 0.95)
    assert low == pytest.approx(0.156028, abs=1e-6)
    assert high == pytest.approx(0.735819, abs=1e-6)
    assert math.isnan(fisher_z_interval(0.5, 3, 0.95)[0])
    assert math.isnan(fisher_z_interval(math.nan, 30, 0.95)[1])
    assert fisher_z_interval(1.0, 30, 0.95) == (1.0, 1.0)


def test_pearson_from_moments_matches_numpy_and_scipy() -> None:
    rng = np.random.default_rng(8)
    x = rng.uniform(size=60)
    y = 0.4 * x + rng.normal(scale=0.2, size=60) + 1000.0  # a large offset must not cost precision
    r = float(pearson_from_moments(moments(x, y).sum(axis=0)))
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert r == pytest.approx(scipy_stats.pearsonr(x, y).statistic, abs=1e-12)


def test_weighted_pearson_equals_pearson_of_repeated_points() -> None:
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.6])
    y = np.array([0.2, 0.3, 0.5, 0.9, 0.4])
    weights = np.array([1.0, 3.0, 2.0, 1.0, 2.0])
    weighted = float(pearson_from_moments(moments(x, y, weights).sum(axis=0)))
    repeated = np.repeat(np.arange(5), weights.astype(int))
    assert weighted == pytest.approx(np.corrcoef(x[repeated], y[repeated])[0, 1], abs=1e-12)


def test_pearson_is_nan_for_a_constant_variable() -> None:
    x = np.full(10, 0.37)
    y = np.linspace(0, 1, 10)
    assert math.isnan(float(pearson_from_moments(moments(x, y).sum(axis=0))))
    # A resample that drew one point only (its count matrix row is 10 × one cluster).
    totals = 10 * moments(np.array([0.2, 0.4]), np.array([0.1, 0.9]))[0]
    assert math.isnan(float(pearson_from_moments(totals)))


def test_cell_seed_is_stable_and_specific() -> None:
    first = np.random.default_rng(cell_seed(0, "model", "bbq", "Q", "overall", "bias_ambig")).integers(1 << 30)
    same = np.random.default_rng(cell_seed(0, "model", "bbq", "Q", "overall", "bias_ambig")).integers(1 << 30)
    assert first == same
    others = [
        cell_seed(1, "model", "bbq", "Q", "overall", "bias_ambig"),
        cell_seed(0, "model", "bbq", "Q+IF", "overall", "bias_ambig"),
        cell_seed(0, "model", "bbq", "Q", "Age", "bias_ambig"),
        cell_seed(0, "model", "bbqQ", "", "overall", "bias_ambig"),  # the separator matters
    ]
    assert all(np.random.default_rng(s).integers(1 << 30) != first for s in others)


def test_cell_seed_does_not_depend_on_the_process() -> None:
    code = "from evals.stats import cell_seed; import numpy as np; print(np.random.default_rng(cell_seed(4, 'a', 'b')).integers(1 << 62))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": str(h)}, capture_output=True, text=True, check=True
        ).stdout
        for h in (1, 2)
    }
    assert len(outputs) == 1
    assert outputs == {f"{np.random.default_rng(cell_seed(4, 'a', 'b')).integers(1 << 62)}\n"}
