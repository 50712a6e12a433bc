"""Self-correction as an effect: each condition's paired change against a baseline condition (``delta_*`` rows).

Ganguli et al. 2023's claim is a difference — how much an instruction (or reasoning) lowers a bias metric
against the plain question, and how that grows with model size — so moralscope reports it as one number with
its own interval instead of two overlapping bands. For every (benchmark, model, model_labels) that has a cell
under the baseline (``Q``) and a cell under another condition, and for every headline metric of the benchmark
(``Benchmark.headlines``, with the headline's method), :func:`effect_rows` adds a metrics row:

- ``metric`` = ``delta_<metric>``, ``condition`` = the condition, ``baseline`` = ``Q``, ``method`` = the
  headline's, slice ``overall`` — and for a per-slice headline (BBQ s_AMB) each slice (category) too;
- ``value`` = metric(condition) − metric(baseline), both computed **on the paired items only**. An item is
  an (``item_id``, ``variant``) key; it is paired when it has at least one row without an ``error`` under both
  conditions. Every other row of either cell (an item errored or missing on the other side, and error rows
  themselves) is left out exactly as an error row is left out of a metric (its scores nulled), so a
  law-school pair whose other variant is unpaired drops out too. With several reasoning samples per item (a
  CoT condition with ``cot.samples`` > 1) the condition's side uses all of its item's usable samples, as its
  own metric does (a BBQ count pools them as rows, Winogender averages them per occupation first, law school
  pairs them by sample index): the delta's value is then exactly the difference of the two conditions'
  reported values whenever no item is left out;
- the interval is a **clustered paired percentile bootstrap**: the two cells' per-cluster sums
  (``Benchmark.cluster_sums``) are put side by side, one matrix, so each resample draws the clusters once and
  evaluates both metrics on the same draw before taking the difference. Identical conditions therefore give a
  zero-width interval at 0, and a constant shift a zero-width interval at the shift. Seeded like every cell
  (``evals.metrics.common.cell_bootstrap``) from (seed, model, benchmark, condition, slice, ``delta_<metric>``);
  the headline's own ``ci_method`` does not carry over (a Fisher-z interval has no paired form): always
  ``bootstrap`` (``none`` without resamples);
- ``n`` = paired items, ``n_clusters`` = clusters with a row of either side, ``n_excluded`` = items of either
  cell that are not paired.

A benchmark that does not implement ``cluster_sums`` (a plugin may not) gets no ``delta_*`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from evals.metrics.common import (
    OVERALL,
    BootstrapSettings,
    CellKey,
    ClusterSums,
    MetricRow,
    bootstrap_estimate,
    metric_row,
    require_columns,
    require_non_null,
)
from evals.stats import FloatArray, Statistic
from schemas.tables import EFFECT_DESCRIPTION

if TYPE_CHECKING:
    from evals.protocol import Benchmark

__all__ = [
    "BASELINE",
    "EFFECT_PREFIX",
    "effect_description",
    "effect_metric",
    "effect_rows",
    "paired_difference",
    "paired_frames",
]

BASELINE = "Q"
"""The condition every other condition is compared with (the study's plain question)."""
EFFECT_PREFIX = "delta_"
_UNPAIRED = "not paired: the item has no usable row under both conditions"
_KEY = ("item_id", "_variant")


def effect_metric(metric: str) -> str:
    """The name of a metric's effect row: ``delta_<metric>``."""
    return f"{EFFECT_PREFIX}{metric}"


def effect_description(metric: str) -> str:
    """What the ``delta_<metric>`` row of ``metric`` means (``schemas.tables.EFFECT_DESCRIPTION``)."""
    return EFFECT_DESCRIPTION.format(metric=metric)


def _keyed(frame: pl.DataFrame) -> pl.DataFrame:
    variant = pl.col("variant").fill_null("") if "variant" in frame.columns else pl.lit("")
    return frame.with_columns(variant.alias("_variant"))


def _usable_keys(frame: pl.DataFrame) -> pl.DataFrame:
    usable = pl.col("error").is_null() if "error" in frame.columns else pl.lit(True)
    return frame.filter(usable).select(*_KEY).unique(maintain_order=True)


def paired_frames(
    condition: pl.DataFrame, baseline: pl.DataFrame, score_columns: Iterable[str]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int]:
    """The two cells with every row outside the paired items marked as an error (scores nulled).

    Returns (condition, baseline, the paired keys with their ``category``, unpaired keys of either cell).
    Both frames need ``item_id``; ``variant``, ``error`` and ``category`` are optional.
    """
    from evals.metrics import without_error_scores

    for frame in (condition, baseline):
        require_columns(frame, ("item_id",), "Paired effect")
        require_non_null(frame, ("item_id",), "Paired effect")
    condition, baseline = _keyed(condition), _keyed(baseline)
    paired = _usable_keys(condition).join(_usable_keys(baseline), on=list(_KEY), how="inner")
    every = pl.concat([condition.select(*_KEY), baseline.select(*_KEY)]).unique(maintain_order=True)
    marked = []
    for frame in (condition, baseline):
        flagged = frame.join(paired.with_columns(pl.lit(True).alias("_paired")), on=list(_KEY), how="left")
        error = pl.col("error") if "error" in frame.columns else pl.lit(None, dtype=pl.String)
        flagged = flagged.with_columns(
            pl.when(pl.col("_paired").is_null()).then(pl.lit(_UNPAIRED)).otherwise(error).alias("error")
        )
        marked.append(without_error_scores(flagged.drop("_paired"), score_columns))
    categories = condition.select(*_KEY, *(["category"] if "category" in condition.columns else [])).unique(
        subset=list(_KEY), keep="first", maintain_order=True
    )
    keys = paired.join(categories, on=list(_KEY), how="left")
    return marked[0], marked[1], keys, every.height - paired.height


def paired_difference(condition: ClusterSums, baseline: ClusterSums) -> tuple[FloatArray, Statistic]:
    """The two cells' per-cluster sums side by side (clusters aligned by name; a cluster one side lacks has a
    zero row there; clusters with no row on either side dropped) and the statistic condition − baseline.

    Resampling rows of the matrix draws each cluster for both conditions at once: a paired bootstrap.
    """
    order = list(dict.fromkeys([*condition.clusters, *baseline.clusters]))
    index = {cluster: i for i, cluster in enumerate(order)}
    width = condition.sums.shape[1]
    matrix = np.zeros((len(order), width + baseline.sums.shape[1]))
    np.add.at(matrix[:, :width], [index[c] for c in condition.clusters], condition.sums)
    np.add.at(matrix[:, width:], [index[c] for c in baseline.clusters], baseline.sums)
    matrix = matrix[np.any(matrix != 0, axis=1)]

    def statistic(totals: FloatArray) -> FloatArray:
        return np.asarray(
            condition.statistic(totals[..., :width]) - baseline.statistic(totals[..., width:]), dtype=np.float64
        )

    return matrix, statistic


def _implements_cluster_sums(benchmark: Benchmark) -> bool:
    from evals.protocol import Benchmark

    return type(benchmark).cluster_sums is not Benchmark.cluster_sums


def _cell_effects(
    benchmark: Benchmark,
    key: CellKey,
    condition: pl.DataFrame,
    baseline: pl.DataFrame,
    settings: BootstrapSettings,
    baseline_name: str,
) -> list[MetricRow]:
    score_columns = ["chosen", *benchmark.score_columns]
    condition, baseline, keys, unpaired = paired_frames(condition, baseline, score_columns)
    slices: list[tuple[str, pl.Expr | None]] = [(OVERALL, None)]
    if "category" in keys.columns and any(h.per_slice for h in benchmark.headlines):
        for category in keys.get_column("category").drop_nulls().unique(maintain_order=True).to_list():
            slices.append((str(category), pl.col("category") == category))
    rows: list[MetricRow] = []
    for headline in benchmark.headlines:
        for slice_, where in slices if headline.per_slice else slices[:1]:
            sides = [f if where is None else f.filter(where) for f in (condition, baseline)]
            sums = [benchmark.cluster_sums(side, headline.metric, headline.method) for side in sides]
            matrix, statistic = paired_difference(*sums)
            metric = effect_metric(headline.metric)
            estimate = bootstrap_estimate(matrix, statistic, key=key, slice_=slice_, metric=metric, settings=settings)
            in_slice = keys if where is None else keys.filter(where)
            excluded = unpaired
            if where is not None:
                every = pl.concat([s.select(*_KEY) for s in sides]).unique().height
                excluded = every - in_slice.height
            row = metric_row(
                key,
                slice_=slice_,
                metric=metric,
                method=headline.method,
                estimate=estimate,
                n=in_slice.height,
                n_clusters=matrix.shape[0],
                n_excluded=excluded,
                confidence=settings.confidence,
            )
            row["baseline"] = baseline_name
            rows.append(row)
    return rows


def effect_rows(
    samples: pl.DataFrame,
    benchmarks: Mapping[str, Benchmark],
    settings: BootstrapSettings,
    *,
    baseline: str = BASELINE,
) -> list[MetricRow]:
    """The ``delta_*`` rows of every (benchmark, model, model_labels, condition ≠ baseline) cell of ``samples``
    that has a baseline cell (see the module docstring), in order of first appearance.

    ``samples`` has error rows' scores nulled already (:func:`evals.metrics.without_error_scores`).
    """
    groups: dict[tuple[str, str, str], dict[str, pl.DataFrame]] = {}
    for values, group in samples.group_by(["benchmark", "model", "model_labels", "condition"], maintain_order=True):
        name, model, labels, condition = (str(v) for v in values)
        groups.setdefault((name, model, labels), {})[condition] = group
    rows: list[MetricRow] = []
    for (benchmark_name, model, labels), cells in groups.items():
        benchmark = benchmarks[benchmark_name]
        if baseline not in cells or not _implements_cluster_sums(benchmark):
            continue
        for condition, frame in cells.items():
            if condition == baseline:
                continue
            key = CellKey(model=model, model_labels=labels, benchmark=benchmark_name, condition=condition)
            rows.extend(_cell_effects(benchmark, key, frame, cells[baseline], settings, baseline))
    return rows
