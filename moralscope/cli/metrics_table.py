"""The metrics table people read: one row per model × benchmark × condition × metric, with its CI."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from moralscope.cli.errors import print_table

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
