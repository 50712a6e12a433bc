"""``report.html``: a job's metrics for people — one self-contained page, no scripts, no external assets.

Figures are drawn with matplotlib and inlined as SVG (:mod:`service.report.figures`): per benchmark its
headline metrics, the self-correction effects against Q (``delta_*`` rows) and the per-slice headlines (BBQ
per category), as sweep plots against a numeric model label when the models form a sweep
(:mod:`service.report.data`), else as interval plots; each with a short caption. Then the tables and what
produced the numbers (:mod:`service.report.page`, :mod:`service.report.tables`). Several finished jobs make one
report where their prompts agree (:mod:`service.report.combine`). Every number comes from ``metrics.parquet``;
nothing is computed here. The page opens offline and under a CSP that allows no script and no fetch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from evals.protocol import Benchmark
from service.report.combine import JobResults, combined_metrics, render_jobs_report
from service.report.page import render_page
from service.report.tables import FailedCellRow, failed_cells_section

__all__ = ["JobResults", "combined_metrics", "render_jobs_report", "render_page", "render_report"]


def render_report(
    metrics: pl.DataFrame,
    document: dict[str, Any],
    benchmarks: Sequence[Benchmark] | None = None,
    *,
    failed_cells: Sequence[FailedCellRow] = (),
) -> str:
    """The HTML page of a job's metrics table and its resolved spec (``spec.json``); ``benchmarks`` are the
    job's (``evals.benchmarks.job_benchmarks``) in its order, default: those of the spec in ``document``;
    ``failed_cells``: the cells left without metrics (listed after the benchmarks)."""
    job = JobResults(str(document.get("job_id", "")), metrics, document)
    return render_jobs_report([job], benchmarks, appendix=failed_cells_section(failed_cells))
