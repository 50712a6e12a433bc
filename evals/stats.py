"""Clustered bootstrap and analytic intervals (SPEC §7), vectorised.

Every statistic here is a function of **cluster totals**: a (K × m) matrix of per-cluster sums
(K clusters, m sufficient statistics such as "rows", "correct answers", "Σ x·y"). Resampling K
clusters with replacement is then a (R × K) matrix of counts ``C`` (how often each cluster was
drawn in each of R resamples), and the resampled totals are one matrix product ``C @ sums``. A
statistic maps totals of shape (..., m) to values of shape (...), so the same function gives the
point estimate (from ``sums.sum(axis=0)``) and all R bootstrap replicates at once. Ratios of sums,
means of paired differences and (weighted) Pearson correlations all have this form.

Intervals are percentile intervals over the replicates where the statistic is defined (a
resample can, e.g., contain no non-unknown BBQ answer; such replicates carry no information about
the spread and are dropped; none defined → NaN). The analytic interval for a correlation is
Fisher's z: z = atanh r, se = 1/√(n − 3), r ∈ tanh(z ± q·se) with q the normal quantile.

Seeds are derived per cell from the job seed and the cell's identity with a stable hash
(blake2b), so adding a model or a condition never changes another cell's interval.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Statistic = Callable[[FloatArray], FloatArray]
"""Maps cluster totals of shape (..., m) to the statistic's values of shape (...)."""

_BLOCK_ENTRIES = 1 << 22
"""At most this many (resample, cluster) counts are held at once (32 MiB as float64)."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """A statistic's value with its interval (NaN bounds and ci_method ``none`` when there is none)."""

    value: float
    ci_low: float
    ci_high: float
    ci_method: str


def cell_seed(seed: int, *identity: str) -> np.random.SeedSequence:
    """A seed for one cell, stable across processes and Python versions (unlike ``hash()``).

    ``identity`` names the cell, e.g. (model, benchmark, condition, slice, metric).
    """
    digest = hashlib.blake2b("\x1f".join(identity).encode(), digest_size=16).digest()
    return np.random.SeedSequence([seed, int.from_bytes(digest, "little")])


def resample_counts(n_clusters: int, resamples: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """How often each of ``n_clusters`` clusters is drawn in each resample: shape (resamples, n_clusters).

    Each resample draws ``n_clusters`` clusters uniformly with replacement; row sums equal ``n_clusters``.
    """
    # The narrowest integer type that holds a cluster index: drawing uint16 is ~3x faster than int64.
    dtype = np.uint16 if n_clusters <= np.iinfo(np.uint16).max else np.int64
    draws = rng.integers(0, n_clusters, size=(resamples, n_clusters), dtype=dtype)
    offsets = (np.arange(resamples, dtype=np.int64) * n_clusters)[:, None]
    flat = np.bincount((draws + offsets).ravel(), minlength=resamples * n_clusters)
    return flat.reshape(resamples, n_clusters)


def percentile_interval(replicates: FloatArray, confidence: float) -> tuple[float, float]:
    """The (α/2, 1 − α/2) percentiles of the finite replicates, α = 1 − confidence; NaN if none is finite."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


class ClusterBootstrap:
    """Cluster totals and their bootstrap replicates: drawn once, any statistic of the same sums evaluated.

    ``cluster_sums`` is (K × m), one row per cluster. The replicates are ``C @ cluster_sums`` with
    ``C`` from :func:`resample_counts`; none are drawn when ``resamples == 0`` or K = 0.
    """

    def __init__(self, cluster_sums: FloatArray, *, resamples: int, seed: np.random.SeedSequence) -> None:
        sums = np.asarray(cluster_sums, dtype=np.float64)
        if sums.ndim != 2:
            raise ValueError(f"cluster_sums must be a (clusters × statistics) matrix, got shape {sums.shape}")
        self.n_clusters = sums.shape[0]
        self.totals: FloatArray = sums.sum(axis=0)
        self.replicates: FloatArray | None = None
        if resamples > 0 and self.n_clusters > 0:
            rng = np.random.default_rng(seed)
            # In blocks of resamples, so that the count matrix stays small (law school: ~22k students).
            block = max(1, _BLOCK_ENTRIES // self.n_clusters)
            replicates = np.empty((resamples, sums.shape[1]))
            for start in range(0, resamples, block):
                stop = min(start + block, resamples)
                counts = resample_counts(self.n_clusters, stop - start, rng)
                replicates[start:stop] = counts.astype(np.float64) @ sums
            self.replicates = replicates

    def estimate(self, statistic: Statistic, confidence: float) -> Estimate:
        """The statistic on all clusters with its percentile interval (NaN and ``none`` without replicates)."""
        value = float(statistic(self.totals))
        if self.replicates is None:
            return Estimate(value, math.nan, math.nan, "none")
        low, high = percentile_interval(statistic(self.replicates), confidence)
        return Estimate(value, low, high, "bootstrap")


def clustered_bootstrap(
    cluster_sums: FloatArray,
    statistic: Statistic,
    *,
    resamples: int,
    confidence: float,
    seed: np.random.SeedSequence,
) -> Estimate:
    """The statistic on all clusters, with a clustered percentile-bootstrap interval.

    ``cluster_sums`` is (K × m): one row per cluster. With ``resamples == 0`` or no clusters the
    interval is NaN and ``ci_method`` is ``none``.
    """
    return ClusterBootstrap(cluster_sums, resamples=resamples, seed=seed).estimate(statistic, confidence)


def safe_divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0 (never a silent 0 or inf)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast_shapes(num.shape, den.shape), math.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def ratio_of_sums(numerator: int, denominator: int) -> Statistic:
    """The statistic Σ numerator / Σ denominator over columns ``numerator`` and ``denominator``.

    A mean (Σx / Σ1), a share (Σ correct / Σ rows) or a mean of paired differences (Σd / Σ pairs).
    """

    def statistic(totals: FloatArray) -> FloatArray:
        return safe_divide(totals[..., numerator], totals[..., denominator])

    return statistic


MOMENT_COLUMNS = ("w", "wx", "wy", "wxx", "wyy", "wxy")
"""The columns :func:`moments` returns and :func:`pearson_from_moments` reads."""


def moments(x: FloatArray, y: FloatArray, weights: FloatArray | None = None) -> FloatArray:
    """Per-row sufficient statistics of a weighted correlation: (w, w·x, w·y, w·x², w·y², w·x·y).

    Shape (len(x) × 6). The correlation is shift invariant, so x and y are centred on their
    (weighted) means first: that keeps the moment formula free of cancellation error.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if x.shape != y.shape or x.shape != w.shape or x.ndim != 1:
        raise ValueError(f"x, y and weights must be 1-d of the same length, got {x.shape}, {y.shape}, {w.shape}")
    if x.size and w.sum() > 0:
        x = x - np.average(x, weights=w)
        y = y - np.average(y, weights=w)
    return np.column_stack([w, w * x, w * y, w * x * x, w * y * y, w * x * y])


def pearson_from_moments(totals: FloatArray) -> FloatArray:
    """Weighted Pearson r from summed :func:`moments` (columns in :data:`MOMENT_COLUMNS` order).

    r = (S·Sxy − Sx·Sy) / √((S·Sxx − Sx²)(S·Syy − Sy²)); NaN when either variable is constant.
    """
    s, sx, sy, sxx, syy, sxy = (totals[..., i] for i in range(6))
    cov = s * sxy - sx * sy
    var_x = s * sxx - sx * sx
    var_y = s * syy - sy * sy
    # Constant up to rounding counts as constant (e.g. a resample that drew one occupation only): the
    # rounding residue of S·Sxx − Sx² is relative to S·Sxx, and would otherwise give a random r.
    degenerate = (var_x <= 1e-12 * s * sxx) | (var_y <= 1e-12 * s * syy)
    denominator = np.sqrt(np.where(degenerate, 1.0, var_x * var_y))
    r = np.where(degenerate, math.nan, cov / denominator)
    return np.asarray(np.clip(r, -1.0, 1.0), dtype=np.float64)


def fisher_z_interval(r: float, n: int, confidence: float) -> tuple[float, float]:
    """Fisher's z interval for a correlation from n pairs: tanh(atanh r ± q / √(n − 3)).

    q is the standard normal (1 + confidence)/2 quantile (Fisher 1921). NaN when r is NaN or
    n ≤ 3; (r, r) when |r| = 1.
    """
    if math.isnan(r) or n <= 3:
        return math.nan, math.nan
    if abs(r) >= 1.0:
        return r, r
    z = math.atanh(r)
    half_width = NormalDist().inv_cdf((1 + confidence) / 2) / math.sqrt(n - 3)
    return math.tanh(z - half_width), math.tanh(z + half_width)
