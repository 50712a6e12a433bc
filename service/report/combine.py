"""One report from several finished jobs: a sweep run as separate jobs, read as one study.

The jobs' metrics tables are stacked and drawn as one (:func:`service.report.page.render_page`), but only
where they are comparable. For each (benchmark, condition), the first job (in the order given) that has it
is the reference; another job's cell joins it only when

- both jobs' ``spec.json`` carry prompt digests (:mod:`evals.digests`; jobs planned before digests existed
  cannot be checked), and the digests agree: the same items, the same prompt templates and answer candidates,
  the same reasoning sampling settings (models may differ);
- the intervals have the same confidence level.

Every cell left out is named in a note at the top of the page, with the reason. A ``delta_*`` row goes with
its two cells: it is left out when its condition's or its baseline's cell is. A model key used by several
jobs is shown as ``<model> (<job id>)`` so that the models stay apart. The sweep settings come from the first
job whose spec sets them (``report.sweep_label``, ``report.log_scale``).

Combining happens on the server (``GET /v1/reports?job=A&job=B``; :func:`service.jobs.combined_report`): it
holds the results and checks ownership, the renderer needs the benchmark registry and matplotlib, and the SDK
(which must not import the service or plotting libraries) stays a thin client that saves the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import polars as pl

from evals.benchmarks import get_benchmark, job_benchmarks, registered_names
from evals.protocol import Benchmark
from schemas.errors import MoralscopeError
from schemas.spec import JobSpec
from service.report.data import percent
from service.report.page import render_page

Cell = tuple[str, str]


@dataclass(frozen=True)
class JobResults:
    """A finished job's metrics table and ``spec.json``."""

    job_id: str
    metrics: pl.DataFrame
    document: dict[str, Any]

    @property
    def name(self) -> str:
        return str((self.document.get("spec") or {}).get("name") or self.job_id)

    def digests(self) -> dict[Cell, dict[str, Any]] | None:
        entries = self.document.get("prompt_digests")
        if not entries:
            return None
        return {(e["benchmark"], e["condition"]): e for e in entries}

    def benchmarks(self) -> list[Benchmark]:
        """The job's benchmarks in its order (the registered ones in its table if its spec no longer loads)."""
        try:
            return [s.benchmark for s in job_benchmarks(JobSpec.model_validate(self.document.get("spec") or {}))]
        except (MoralscopeError, ValueError):
            present = set(self.metrics.get_column("benchmark").to_list())
            return [get_benchmark(name) for name in registered_names() if name in present]


def _difference(reference: dict[str, Any], other: dict[str, Any]) -> str | None:
    """Why two digest entries of one cell differ (None: they agree)."""
    if reference["items_sha256"] != other["items_sha256"]:
        return f"different items ({other['items']} vs {reference['items']})"
    if reference["prompts_sha256"] != other["prompts_sha256"]:
        return "different prompt templates or answer candidates"
    if reference.get("cot") != other.get("cot"):
        return "different reasoning sampling settings"
    return None


def _confidence(metrics: pl.DataFrame, cell: Cell) -> float | None:
    rows = metrics.filter((pl.col("benchmark") == cell[0]) & (pl.col("condition") == cell[1]))
    return float(rows.get_column("confidence")[0]) if rows.height else None


def _excluded_cells(jobs: Sequence[JobResults]) -> tuple[dict[str, set[Cell]], list[str]]:
    """Per job, the cells left out; and the notes saying why."""
    references: dict[Cell, JobResults] = {}
    excluded: dict[str, set[Cell]] = {job.job_id: set() for job in jobs}
    notes = []
    for job in jobs:
        cells = job.metrics.select("benchmark", "condition").unique(maintain_order=True).iter_rows()
        for cell in cells:
            reference = references.setdefault(cell, job)
            if reference is job:
                continue
            mine, theirs = job.digests(), reference.digests()
            if mine is None or theirs is None:
                missing = job if mine is None else reference
                reason = f"job {missing.job_id} has no prompt digests (planned before they existed) to check it by"
            elif cell not in mine or cell not in theirs:
                reason = "a job has no prompt digest of this cell"
            else:
                reason = _difference(theirs[cell], mine[cell]) or ""
                ours, base = _confidence(job.metrics, cell), _confidence(reference.metrics, cell)
                if not reason and ours != base and ours is not None and base is not None:
                    reason = f"other interval confidence ({percent(ours)} vs {percent(base)})"
            if reason:
                excluded[job.job_id].add(cell)
                notes.append(
                    f"Not combined: {cell[0]} under {cell[1]} of job {job.job_id} ({job.name}), compared with job "
                    f"{reference.job_id} ({reference.name}): {reason}."
                )
    return excluded, notes


def _kept(job: JobResults, excluded: set[Cell], renamed: bool) -> pl.DataFrame:
    metrics = job.metrics
    if renamed:
        metrics = metrics.with_columns((pl.col("model") + f" ({job.job_id})").alias("model"))
    for benchmark, condition in excluded:
        in_benchmark = pl.col("benchmark") == benchmark
        touches = (pl.col("condition") == condition) | (pl.col("baseline").fill_null("") == condition)
        metrics = metrics.filter(~(in_benchmark & touches))
    return metrics


def combined_metrics(jobs: Sequence[JobResults]) -> tuple[pl.DataFrame, list[str]]:
    """The jobs' comparable metrics rows, stacked, and notes on what was left out (see the module docstring)."""
    excluded, notes = _excluded_cells(jobs)
    owners: dict[str, set[str]] = {}
    for job in jobs:
        for model in job.metrics.get_column("model").unique().to_list():
            owners.setdefault(str(model), set()).add(job.job_id)
    frames = []
    for job in jobs:
        shared = any(len(owners[str(m)]) > 1 for m in job.metrics.get_column("model").unique().to_list())
        frames.append(_kept(job, excluded[job.job_id], renamed=shared))
    return pl.concat(frames, how="vertical_relaxed"), notes


def render_jobs_report(
    jobs: Sequence[JobResults], benchmarks: Sequence[Benchmark] | None = None, *, appendix: str = ""
) -> str:
    """The HTML page of one or several finished jobs; ``benchmarks`` in their order (default: the jobs', from
    their specs); ``appendix``: HTML after the benchmarks."""
    metrics, notes = combined_metrics(jobs)
    by_name: dict[str, Benchmark] = {}
    for benchmark in benchmarks if benchmarks is not None else (b for job in jobs for b in job.benchmarks()):
        by_name.setdefault(benchmark.name, benchmark)
    settings: dict[str, Any] = {}
    for job in jobs:
        for key, value in ((job.document.get("spec") or {}).get("report") or {}).items():
            if value is not None:
                settings.setdefault(key, value)
    if len(jobs) == 1:
        title = jobs[0].name
        intro = f"Job <code>{escape(jobs[0].job_id)}</code>."
    else:
        title = f"{len(jobs)} jobs"
        listed = ", ".join(f"<code>{escape(j.job_id)}</code> ({escape(j.name)})" for j in jobs)
        intro = f"Combined from jobs {listed}."
    intro = (
        f'<p class="note">{intro} Values and intervals from <code>metrics.parquet</code>; definitions in '
        "docs/science.md (SPEC §3–5, §7).</p>"
    )
    return render_page(
        metrics,
        title=title,
        intro=intro,
        benchmarks=list(by_name.values()),
        documents=[(j.job_id, j.document) for j in jobs],
        report_settings=settings,
        notes=notes,
        appendix=appendix,
    )
