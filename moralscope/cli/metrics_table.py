"""The metrics table people read: one row per model × benchmark × condition × metric, with its CI."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from moralscope.cli.errors import print_table
from schemas.jobs import FailedCell, ModelProgress

COLUMNS = ["model", "benchmark", "condition", "metric", "method", "value", "95% CI", "n"]


def format_number(value: Any) -> str:
    """Three decimals for floats, an en dash for missing or NaN values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_interval(row: Mapping[str, Any]) -> str:
    if row.get("ci_method", "none") == "none":
        return "–"
    return f"[{format_number(row['ci_low'])}, {format_number(row['ci_high'])}] {row['ci_method']}"


def table_rows(rows: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """The cells of the metrics table, in the order of ``rows``."""
    return [
        [
            str(r["model"]),
            str(r["benchmark"]),
            str(r["condition"]),
            str(r["metric"]),
            str(r["method"]),
            format_number(r["value"]),
            format_interval(r),
            format_number(r["n"]),
        ]
        for r in rows
    ]


def print_metrics_table(rows: Iterable[Mapping[str, Any]], *, title: str | None = None) -> None:
    """Print metrics rows (dicts with the metrics-table columns) as a table."""
    print_table(COLUMNS, table_rows(rows), title=title or "metrics (overall; per-category rows are in metrics.parquet)")


def print_failed_cells(cells: Iterable[FailedCell]) -> None:
    """Print the cells that got no metrics because of their error rows (nothing when there are none)."""
    rows = [
        [
            c.model,
            c.benchmark,
            c.condition,
            f"{c.errors}/{c.rows}",
            c.cause,
            ", ".join(e.item_id + (f"#{e.variant}" if e.variant else "") for e in c.examples),
        ]
        for c in cells
    ]
    if rows:
        print_table(
            ["model", "benchmark", "condition", "error rows", "cause", "e.g. items"],
            rows,
            title="failed cells: no metrics (more error rows than max_error_rate; the rows are in samples.parquet)",
        )


def model_rates(model: ModelProgress) -> str:
    """One line on a model's progress and speed: phase, requests, rates, cache hit rate, ETA."""
    parts = [f"{model.model}: {model.phase}", f"{model.requests_done:,}/{model.requests_total:,} requests"]
    if model.rows_per_second:
        parts.append(f"{model.rows_per_second:,.1f} rows/s")
    if model.tokens_per_second:
        computed = model.computed_tokens_per_second or 0.0
        parts.append(f"{model.tokens_per_second:,.0f} tokens/s requested, {computed:,.0f} computed")
    if model.cache_hit_rate is not None:
        parts.append(f"cache hit rate {model.cache_hit_rate:.0%}")
    if model.errors:
        parts.append(f"{model.errors:,} error rows")
    if model.eta_seconds is not None and model.phase not in ("done", "failed", "cancelled"):
        parts.append(f"ETA {model.eta_seconds:,.0f} s")
    return ", ".join(parts)
