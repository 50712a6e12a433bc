"""From the samples table to the metrics table (SPEC §3–5, §7).

:func:`compute_metrics` groups the samples by (benchmark, model, model_labels, condition), in order of
first appearance, and hands each group to its benchmark's module (``evals.metrics.bbq``,
``.winogender``, ``.lawschool``), whose docstrings give every formula and its source. The result has
exactly the columns, order and types of ``schemas.tables.METRICS_SCHEMA``; metric names are listed in
``schemas.tables.METRIC_DESCRIPTIONS``.

Intervals are clustered percentile-bootstrap intervals (``evals.stats``), seeded per cell from
(seed, model, benchmark, condition, slice, metric), so a given seed always gives the same frame and
adding a model or a condition leaves the other cells' intervals unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from evals.metrics.bbq import bbq_metrics
from evals.metrics.common import BootstrapSettings, CellKey, MetricRow, metrics_frame, require_columns, require_non_null
from evals.metrics.lawschool import lawschool_metrics
from evals.metrics.winogender import winogender_metrics
from schemas.errors import InvalidInputError

__all__ = ["BENCHMARK_METRICS", "compute_metrics"]

BENCHMARK_METRICS: dict[str, Callable[[pl.DataFrame, CellKey, BootstrapSettings], list[MetricRow]]] = {
    "bbq": bbq_metrics,
    "winogender": winogender_metrics,
    "lawschool": lawschool_metrics,
}
"""Each benchmark's metric function: (one cell's samples, its key, settings) → metric rows."""

_GROUP_COLUMNS = ("benchmark", "model", "model_labels", "condition")
SCORE_COLUMNS = (
    "chosen",
    "correct",
    "p_correct",
    "p_unknown",
    "p_biased",
    "p_female",
    "p_male",
    "p_neutral",
    "p_yes",
    "p_yes_raw",
)
"""Columns derived from a row's scores: null on an error row, so every metric leaves it out."""


def without_error_scores(samples: pl.DataFrame) -> pl.DataFrame:
    """``samples`` with the score-derived columns nulled on rows that carry an ``error``.

    An error row has null scores already (``service.runner.rows``); this makes the rule hold for any
    frame handed in, so an error row can never count towards a metric (it counts in ``n_excluded``).
    """
    if "error" not in samples.columns:
        return samples
    failed = pl.col("error").is_not_null()
    return samples.with_columns(
        pl.when(failed).then(None).otherwise(pl.col(c)).alias(c) for c in SCORE_COLUMNS if c in samples.columns
    )


def _settings(resamples: int, confidence: float, seed: int) -> BootstrapSettings:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 0:
        raise InvalidInputError(f"resamples must be an integer ≥ 0, got {resamples!r}", field="resamples")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InvalidInputError(
            f"confidence must be a number strictly between 0 and 1, got {confidence!r}", field="confidence"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"seed must be an integer ≥ 0, got {seed!r}", field="seed")
    return BootstrapSettings(resamples=resamples, confidence=float(confidence), seed=seed)


def compute_metrics(
    samples: pl.DataFrame, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> pl.DataFrame:
    """Every metric of every (benchmark, model, model_labels, condition) group of ``samples``.

    ``samples`` holds (a subset of) SAMPLES_SCHEMA's columns: the four grouping columns plus those
    its benchmarks need (each module's ``REQUIRED_COLUMNS``). Rows with an ``error`` are left out of every
    value and counted in its ``n_excluded`` (a law-school row also takes its pair out). ``resamples = 0`` skips the bootstrap
    (its intervals are NaN with ci_method ``none``; Fisher-z intervals are still given). Values that
    are undefined (e.g. no non-unknown BBQ answer) are NaN, never 0.

    Raises InvalidInputError for a missing column, an unknown benchmark or inconsistent rows (e.g.
    a law-school row without its counterpart), naming what is wrong.
    """
    settings = _settings(resamples, confidence, seed)
    require_columns(samples, _GROUP_COLUMNS, "All")
    require_non_null(samples, _GROUP_COLUMNS, "All")
    unknown = sorted(set(samples.get_column("benchmark").unique().to_list()) - set(BENCHMARK_METRICS))
    if unknown:
        raise InvalidInputError(
            f"unknown benchmark(s) {', '.join(map(repr, unknown))} in samples; known: {', '.join(BENCHMARK_METRICS)}",
            field="samples.benchmark",
        )
    samples = without_error_scores(samples)
    rows: list[MetricRow] = []
    for values, group in samples.group_by(list(_GROUP_COLUMNS), maintain_order=True):
        benchmark, model, model_labels, condition = (str(v) for v in values)
        key = CellKey(model=model, model_labels=model_labels, benchmark=benchmark, condition=condition)
        rows.extend(BENCHMARK_METRICS[benchmark](group, key, settings))
    return metrics_frame(rows)
