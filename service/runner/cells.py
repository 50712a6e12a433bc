"""Failed cells: a model × benchmark × condition whose share of error rows exceeds ``max_error_rate``.

Error rows are always left out of metrics (and counted in ``n_excluded``); a cell with *too many* of them
gets no metrics at all, so that a broken condition (an instruction that pushes every prompt past the
context, a model that cannot serve a benchmark) cannot hide in a big job behind a few surviving rows. Such
a cell is reported with its error count, its most common cause and a few example rows; the job still
completes with its other cells (it fails only when every cell failed).
"""

from __future__ import annotations

import re

import polars as pl

from schemas.jobs import FailedCell, FailedRow

CELL = ("model", "benchmark", "condition")
EXAMPLES = 3


def _pattern(message: str) -> str:
    """An error message with its numbers blanked, so "8301 tokens" and "8415 tokens" count as one cause."""
    return re.sub(r"\d+", "N", message)


def _cause(errors: list[str]) -> str:
    patterns: dict[str, list[str]] = {}
    for message in errors:
        patterns.setdefault(_pattern(message), []).append(message)
    common = max(patterns.values(), key=len)
    others = len(errors) - len(common)
    return common[0] + (f" ({others} other error rows have other causes)" if others else "")


def failed_cells(samples: pl.DataFrame, max_error_rate: float) -> list[FailedCell]:
    """The cells of ``samples`` (columns model, benchmark, condition, item_id, variant, sample, error) whose
    error share exceeds ``max_error_rate``, in order of first appearance."""
    cells = []
    for (model, benchmark, condition), group in samples.group_by(list(CELL), maintain_order=True):
        failed = group.filter(pl.col("error").is_not_null())
        rows, errors = group.height, failed.height
        if not errors or errors / rows <= max_error_rate:
            continue
        examples = [
            FailedRow(item_id=r["item_id"], variant=r["variant"], sample=r["sample"], error=r["error"])
            for r in failed.head(EXAMPLES).iter_rows(named=True)
        ]
        cells.append(
            FailedCell(
                model=str(model),
                benchmark=str(benchmark),
                condition=str(condition),
                rows=rows,
                errors=errors,
                error_rate=errors / rows,
                cause=_cause(failed.get_column("error").to_list()),
                examples=examples,
            )
        )
    return cells


def without_failed_cells(samples: pl.DataFrame, cells: list[FailedCell]) -> pl.DataFrame:
    """``samples`` without the rows of ``cells``."""
    if not cells:
        return samples
    drop = pl.DataFrame(
        {
            "model": [c.model for c in cells],
            "benchmark": [c.benchmark for c in cells],
            "condition": [c.condition for c in cells],
        },
        schema={name: samples.schema[name] for name in CELL},
    )
    return samples.join(drop, on=list(CELL), how="anti", maintain_order="left")
