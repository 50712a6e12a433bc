"""What the benchmarks' metrics share: a cell's identity, the bootstrap settings, the output rows.

A *cell* is one (model, model_labels, benchmark, condition) group of the samples table; each
benchmark module turns a cell's rows into metric rows (dicts keyed like METRICS_SCHEMA), and
:func:`metrics_frame` turns those rows into the metrics table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from evals.stats import ClusterBootstrap, Estimate, FloatArray, Statistic, cell_seed
from schemas.errors import InvalidInputError
from schemas.tables import METRICS_SCHEMA

OVERALL = "overall"
"""The slice name of a metric pooled over every row of the cell."""

MetricRow = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CellKey:
    """The identity of one group of samples: every metric row of the group carries it."""

    model: str
    model_labels: str
    benchmark: str
    condition: str


@dataclass(frozen=True, slots=True)
class BootstrapSettings:
    """How intervals are computed: resamples (0 = no bootstrap), coverage, and the job seed."""

    resamples: int
    confidence: float
    seed: int


@dataclass(frozen=True)
class ClusterSums:
    """One metric of one cell as per-cluster sums: the input of a (paired) clustered bootstrap.

    ``sums`` is (K clusters × m statistics); ``statistic`` maps summed rows (shape (..., m)) to the
    metric, so ``statistic(sums.sum(axis=0))`` is the metric's value and resampling clusters (rows of
    ``sums``) resamples it. A cluster without rows for the metric has a zero row. A paired effect of a
    condition against a baseline stacks the two cells' sums of the clusters both have, side by side,
    and takes the difference of the statistic on each half.
    """

    clusters: tuple[str, ...]
    sums: FloatArray
    statistic: Statistic

    def value(self) -> float:
        return float(self.statistic(self.sums.sum(axis=0)))


def cell_bootstrap(
    cluster_sums: FloatArray, *, key: CellKey, slice_: str, metric: str, settings: BootstrapSettings
) -> ClusterBootstrap:
    """A :class:`~evals.stats.ClusterBootstrap` seeded from (seed, model, benchmark, condition, slice, metric).

    The method (argmax / expected) is deliberately not part of the seed: a module puts both methods'
    sums side by side in ``cluster_sums`` so that they are resampled with the same cluster draws (their
    intervals are then directly comparable, and the draws are made once).
    """
    return ClusterBootstrap(
        cluster_sums,
        resamples=settings.resamples,
        seed=cell_seed(settings.seed, key.model, key.benchmark, key.condition, slice_, metric),
    )


def bootstrap_estimate(
    cluster_sums: FloatArray,
    statistic: Statistic,
    *,
    key: CellKey,
    slice_: str,
    metric: str,
    settings: BootstrapSettings,
) -> Estimate:
    """One statistic of a cell's clusters with its interval (see :func:`cell_bootstrap`)."""
    boot = cell_bootstrap(cluster_sums, key=key, slice_=slice_, metric=metric, settings=settings)
    return boot.estimate(statistic, settings.confidence)


def no_interval(value: float) -> Estimate:
    """A value reported without an interval (counts)."""
    return Estimate(value, math.nan, math.nan, "none")


def metric_row(
    key: CellKey,
    *,
    slice_: str,
    metric: str,
    method: str,
    estimate: Estimate,
    n: int,
    n_clusters: int,
    n_excluded: int,
    confidence: float,
) -> MetricRow:
    """One row of the metrics table (METRICS_SCHEMA's columns)."""
    return {
        "model": key.model,
        "model_labels": key.model_labels,
        "benchmark": key.benchmark,
        "condition": key.condition,
        "slice": slice_,
        "metric": metric,
        "method": method,
        "value": estimate.value,
        "ci_low": estimate.ci_low,
        "ci_high": estimate.ci_high,
        "ci_method": estimate.ci_method,
        "confidence": confidence,
        "n": int(n),
        "n_clusters": int(n_clusters),
        "n_excluded": int(n_excluded),
        "baseline": None,
    }


def metrics_frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """The metrics table: exactly METRICS_SCHEMA's columns, order and types."""
    table = pa.Table.from_pylist(list(rows), schema=METRICS_SCHEMA)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table always converts to a DataFrame
    return frame


def require_columns(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise naming every column of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"{what} metrics need the samples column(s) {', '.join(missing)} (see schemas.tables.SAMPLES_SCHEMA); "
            f"the frame has: {', '.join(frame.columns) or 'no columns'}",
            field="samples",
        )


def require_non_null(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise naming the first column of ``columns`` that holds a null."""
    for column in columns:
        nulls = frame.get_column(column).null_count()
        if nulls:
            raise InvalidInputError(
                f"{what} metrics: samples column {column!r} must not be empty, got {nulls} null value(s)",
                field=f"samples.{column}",
            )


def finite(column: str) -> pl.Expr:
    """True where a float column holds a number (not null, not NaN, not ±inf)."""
    return pl.col(column).is_not_null() & pl.col(column).is_finite().fill_null(False)


def column_array(frame: pl.DataFrame, columns: Sequence[str]) -> FloatArray:
    """The columns as a (rows × columns) float64 matrix."""
    if not columns:
        return np.zeros((frame.height, 0))
    return np.asarray(frame.select(columns).to_numpy(), dtype=np.float64).reshape(frame.height, len(columns))
