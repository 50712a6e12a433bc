"""From the samples table to the metrics table (SPEC §3–5, §7).

:func:`compute_metrics` groups the samples by (benchmark, model, model_labels, condition), in order of
first appearance, and hands each group to its benchmark's ``metrics`` (``evals.protocol.Benchmark``; the
study's are in ``evals.metrics.bbq``, ``.winogender``, ``.lawschool``, whose docstrings give every formula
and its source). The result has exactly the columns, order and types of ``schemas.tables.METRICS_SCHEMA``;
each benchmark documents its metric names in ``Benchmark.metric_descriptions`` (the study's are
``schemas.tables.METRIC_DESCRIPTIONS``).

Then :func:`evals.metrics.effects.effect_rows` adds the self-correction effects: per (benchmark, model) and
headline metric, each condition's paired change against ``Q`` (``delta_<metric>`` rows with ``baseline`` =
``Q``; definitions in that module).

Intervals are clustered percentile-bootstrap intervals (``evals.stats``), seeded per cell from
(seed, model, benchmark, condition, slice, metric), so a given seed always gives the same frame and
adding a model or a condition leaves the other cells' intervals unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import polars as pl

from evals.metrics.common import BootstrapSettings, CellKey, MetricRow, metrics_frame, require_columns, require_non_null
from evals.metrics.effects import BASELINE, effect_rows
from schemas.errors import InvalidInputError

if TYPE_CHECKING:
    from evals.protocol import Benchmark

__all__ = ["compute_metrics", "without_error_scores"]

_GROUP_COLUMNS = ("benchmark", "model", "model_labels", "condition")
COMMON_SCORE_COLUMNS = ("chosen",)
"""Score-derived columns every row has (each benchmark adds its own: ``Benchmark.score_columns``)."""


def without_error_scores(samples: pl.DataFrame, score_columns: Iterable[str] = COMMON_SCORE_COLUMNS) -> pl.DataFrame:
    """``samples`` with the score-derived columns nulled on rows that carry an ``error``.

    An error row has null scores already (``service.runner.rows``); this makes the rule hold for any
    frame handed in, so an error row can never count towards a metric (it counts in ``n_excluded``).
    """
    if "error" not in samples.columns:
        return samples
    failed = pl.col("error").is_not_null()
    columns = dict.fromkeys(c for c in score_columns if c in samples.columns)
    return samples.with_columns(pl.when(failed).then(None).otherwise(pl.col(c)).alias(c) for c in columns)


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


def _benchmarks_of(samples: pl.DataFrame, given: Mapping[str, Benchmark] | None) -> dict[str, Benchmark]:
    """The benchmark of every name in ``samples``: from ``given``, else the registry (built-ins, plugins)."""
    from evals.benchmarks import get_benchmark, registered_names

    found: dict[str, Benchmark] = {}
    unknown = []
    for name in samples.get_column("benchmark").unique(maintain_order=True).to_list():
        if given is not None and name in given:
            found[name] = given[name]
        elif name in registered_names():
            found[name] = get_benchmark(name)
        else:
            unknown.append(str(name))
    if unknown:
        known = sorted({*registered_names(), *(given or {})})
        raise InvalidInputError(
            f"unknown benchmark(s) {', '.join(map(repr, unknown))} in samples; known: {', '.join(known)} "
            "(a job's custom benchmarks: pass them as benchmarks=)",
            field="samples.benchmark",
        )
    return found


def compute_metrics(
    samples: pl.DataFrame,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    benchmarks: Mapping[str, Benchmark] | None = None,
    baseline: str | None = BASELINE,
) -> pl.DataFrame:
    """Every metric of every (benchmark, model, model_labels, condition) group of ``samples``.

    ``samples`` holds (a subset of) the samples table's columns: the four grouping columns plus those
    its benchmarks need. ``benchmarks`` maps names to benchmarks not in the registry (a job's custom
    ones; :func:`evals.benchmarks.job_benchmarks`). Rows with an ``error`` are left out of every
    value and counted in its ``n_excluded`` (a law-school row also takes its pair out). ``resamples = 0``
    skips the bootstrap (its intervals are NaN with ci_method ``none``; Fisher-z intervals are still
    given). ``baseline``: the condition the ``delta_*`` effect rows compare every other condition with (None:
    no effect rows); they need the ``item_id`` column (and ``variant`` where a benchmark has variants). Values
    that are undefined (e.g. no non-unknown BBQ answer) are NaN, never 0.

    Raises InvalidInputError for a missing column, an unknown benchmark or inconsistent rows (e.g.
    a law-school row without its counterpart), naming what is wrong.
    """
    settings = _settings(resamples, confidence, seed)
    require_columns(samples, _GROUP_COLUMNS, "All")
    require_non_null(samples, _GROUP_COLUMNS, "All")
    by_name = _benchmarks_of(samples, benchmarks)
    score_columns = [*COMMON_SCORE_COLUMNS, *(c for b in by_name.values() for c in b.score_columns)]
    samples = without_error_scores(samples, score_columns)
    rows: list[MetricRow] = []
    for values, group in samples.group_by(list(_GROUP_COLUMNS), maintain_order=True):
        benchmark, model, model_labels, condition = (str(v) for v in values)
        key = CellKey(model=model, model_labels=model_labels, benchmark=benchmark, condition=condition)
        rows.extend(by_name[benchmark].metrics(group, key, settings))
    if baseline is not None:
        rows.extend(effect_rows(samples, by_name, settings, baseline=baseline))
    return metrics_frame(rows)
