"""Size limits checked when a job is submitted, cheaply (no model loaded; built-in datasets are not read).

The rows a job plans are counted from the spec: for each of its benchmarks (``evals.benchmarks``) the
rows one condition plans (``Benchmark.planned_items``: items × variants, from the dataset registry's row
counts for the built-in ones) × the conditions that apply to it × reasoning samples for CoT conditions,
summed, × models. This is the number of rows of the samples table.
"""

from __future__ import annotations

from evals.benchmarks import job_benchmarks
from evals.conditions import conditions_for
from schemas.errors import LimitExceededError
from schemas.spec import JobSpec
from service.settings import Settings


def _per_model(spec: JobSpec, *, requests_per_cot_row: int) -> int:
    total = 0
    for selected in job_benchmarks(spec):
        items = selected.benchmark.planned_items(selected.spec)
        for condition in conditions_for(spec, selected.benchmark):
            total += items * (requests_per_cot_row * spec.cot.samples if condition.is_cot else 1)
    return total


def planned_rows(spec: JobSpec) -> int:
    """Rows of the samples table the job will produce (an upper bound where a selection exceeds the data)."""
    return _per_model(spec, requests_per_cot_row=1) * len(spec.models)


def planned_requests(spec: JobSpec) -> int:
    """Engine requests the job will make: one score request per row, plus one generate request per CoT row."""
    return _per_model(spec, requests_per_cot_row=2) * len(spec.models)


def check_planned_rows(spec: JobSpec, *, settings: Settings) -> int:
    """The planned rows; LimitExceededError (422) when over ``Settings.max_items_per_job``."""
    rows = planned_rows(spec)
    if rows > settings.max_items_per_job:
        raise LimitExceededError(
            f"the job plans {rows:,} rows (models × items × conditions × reasoning samples), over the limit of "
            f"{settings.max_items_per_job:,} per job (MORALSCOPE_MAX_ITEMS_PER_JOB); select fewer items "
            "(benchmarks.*.limit / sample) or split the job",
            field="benchmarks",
            http_status=422,
        )
    return rows


def check_submission(spec: JobSpec, *, settings: Settings) -> None:
    """Everything checked when a job is submitted beyond the spec's own validation: its benchmarks resolve
    (plugins installed, their settings valid) and the job is within the size limits."""
    check_planned_rows(spec, settings=settings)
