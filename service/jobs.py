"""The service layer behind the routes: keyword-only functions over the store, the runner and the files.

Routes stay thin (parse, call one of these, return); these functions hold the rules: limits checked on
submission, ownership on every access, and which results exist in which state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from schemas.errors import InvalidInputError, NotFoundError
from schemas.jobs import JobList, JobState, JobView
from schemas.spec import JobSpec
from service.admission import admit_job
from service.auth import Principal
from service.results import JobFiles, normalize_results_root
from service.runner.scheduler import Runner
from service.settings import Settings
from service.store import JobStore
from service.views import job_list, job_view

RESULT_FILES = {
    "samples": "samples.parquet",
    "metrics": "metrics.parquet",
    "spec": "spec.json",
    "report": "report.html",
}


def submit_job(
    *,
    store: JobStore,
    settings: Settings,
    principal: Principal,
    spec: JobSpec,
    idempotency_key: str | None = None,
    runner: Runner | None = None,
) -> tuple[JobView, bool]:
    """Queue a job; returns (its view, whether it was created) — an idempotent replay is not created.

    The spec is admitted first (:func:`service.admission.admit_job`: paths and URIs it may read, its
    benchmarks, its custom data, pinned). Raises LimitExceededError: 422 when the job plans more rows than
    ``max_items_per_job``, 429 when the caller already has ``max_queued_jobs_per_key`` unfinished jobs.
    """
    spec = admit_job(spec, settings=settings, owner=principal.owner)
    job, created = store.create_job(
        owner=principal.owner,
        spec=spec,
        results_root=normalize_results_root(settings.results_uri),
        idempotency_key=idempotency_key,
        max_unfinished=settings.max_queued_jobs_per_key,
    )
    if created and runner is not None:
        runner.wake()
    return job_view(store, job), created


def list_jobs(
    *, store: JobStore, principal: Principal, state: JobState | None = None, limit: int = 20, offset: int = 0
) -> JobList:
    """The caller's jobs, newest first."""
    jobs, count = store.list_jobs(owner=principal.owner, state=state, limit=limit, offset=offset)
    return job_list(store, jobs, count)


def get_job(*, store: JobStore, principal: Principal, job_id: str) -> JobView:
    return job_view(store, store.get_job(job_id, owner=principal.owner))


def cancel_job(*, store: JobStore, principal: Principal, job_id: str, runner: Runner | None = None) -> JobView:
    """Ask a job to stop: queued jobs end at once; running ones stop dispatching and end ``cancelled``."""
    job = store.request_cancel(job_id, owner=principal.owner)
    if runner is not None:
        runner.wake()
    return job_view(store, job)


@dataclass(frozen=True)
class ResultFile:
    files: JobFiles
    relative: str
    filename: str
    """A download name: ``<job id>-samples.parquet``."""


def result_file(*, store: JobStore, principal: Principal, job_id: str, name: str) -> ResultFile:
    """A result file of a finished job (a key of RESULT_FILES); NotFoundError until it exists."""
    job = store.get_job(job_id, owner=principal.owner)
    relative = RESULT_FILES[name]
    files = JobFiles(job.location)
    available = job.state == JobState.COMPLETED or (job.state == JobState.CANCELLED and name in ("samples", "spec"))
    if not available or not files.exists(relative):
        raise NotFoundError(
            f"job {job_id} has no {name} results (state {job.state.value}); "
            + (
                "they are written when it completes"
                if not job.state.is_terminal
                else "a cancelled job keeps the samples of its finished shards but has no metrics or report"
                if job.state == JobState.CANCELLED
                else "the job did not complete"
            )
        )
    return ResultFile(files, relative, f"{job_id}-{relative}")


MAX_REPORT_JOBS = 50
"""Jobs one combined report may read."""


def combined_report(*, store: JobStore, principal: Principal, job_ids: Sequence[str]) -> str:
    """One report.html from the caller's finished jobs, in the order given (:mod:`service.report.combine`).

    Raises InvalidInputError (field ``job``) for no job, a repeated one or more than MAX_REPORT_JOBS;
    NotFoundError for a job that is not the caller's or has no metrics yet.
    """
    from service.report import JobResults, render_jobs_report

    if not job_ids:
        raise InvalidInputError("name at least one job: ?job=ID (repeat it for several jobs)", field="job")
    if len(job_ids) > MAX_REPORT_JOBS:
        raise InvalidInputError(f"a report reads at most {MAX_REPORT_JOBS} jobs, got {len(job_ids)}", field="job")
    repeated = sorted({j for j in job_ids if list(job_ids).count(j) > 1})
    if repeated:
        raise InvalidInputError(f"each job may be named once, got {repeated[0]!r} more than once", field="job")
    results = []
    for job_id in job_ids:
        metrics = result_file(store=store, principal=principal, job_id=job_id, name="metrics")
        spec = result_file(store=store, principal=principal, job_id=job_id, name="spec")
        frame = pl.from_arrow(metrics.files.read_parquet(metrics.relative))
        assert isinstance(frame, pl.DataFrame)
        results.append(JobResults(job_id, frame, json.loads(spec.files.read_text(spec.relative))))
    return render_jobs_report(results)
