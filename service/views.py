"""Public job views (:class:`schemas.jobs.JobView`) built from the store: progress, throughput, ETA.

Progress is real: a request counts as completed once the shard holding it is written and recorded.
Throughput and ETA are measured over the shards finished since the current runner took the job
(``run_started_at``), so a resumed job does not claim the work of its previous life as fast.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from schemas.jobs import JobList, JobState, JobView, ModelProgress, RequestCounts, ResultLocations
from service.limits import planned_requests
from service.store import JobRecord, JobStore, ModelRecord, ShardRecord


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


def result_locations(job: JobRecord, *, planned: bool) -> ResultLocations:
    """Where the job's files are: all of them once it has completed; a cancelled job that got as far as
    planning keeps the samples of its finished shards (and its spec.json)."""
    if job.state == JobState.CANCELLED and planned:
        return ResultLocations(
            location=job.location, samples=f"{job.location}/samples.parquet", spec=f"{job.location}/spec.json"
        )
    if job.state != JobState.COMPLETED:
        return ResultLocations(location=job.location)
    return ResultLocations(
        location=job.location,
        samples=f"{job.location}/samples.parquet",
        metrics=f"{job.location}/metrics.parquet",
        spec=f"{job.location}/spec.json",
        report=f"{job.location}/report.html",
    )


def _throughput(job: JobRecord, shards: list[ShardRecord], now: float) -> tuple[float | None, float | None]:
    """(tokens per second, seconds to completion) of the current run."""
    remaining = sum(s.requests for s in shards if s.state == "pending")
    if job.state.is_terminal:
        return None, (0.0 if job.state == JobState.COMPLETED else None)
    start = job.run_started_at
    if start is None:
        return None, None
    recent = [s for s in shards if s.state == "done" and s.finished_at is not None and s.finished_at >= start]
    elapsed = now - start
    if not recent or elapsed <= 0:
        return None, None
    tokens_per_second = sum(s.tokens for s in recent) / elapsed
    requests_per_second = sum(s.requests for s in recent) / elapsed
    eta = remaining / requests_per_second if requests_per_second > 0 else None
    return tokens_per_second, eta


def job_view(
    store: JobStore,
    job: JobRecord,
    *,
    include_spec: bool = True,
    shards: list[ShardRecord] | None = None,
    models: list[ModelRecord] | None = None,
) -> JobView:
    """The API's view of one job (its ``shards`` and ``models`` are read from the store unless given)."""
    shards = store.shards(job.id) if shards is None else shards
    progress = []
    for model in store.models(job.id) if models is None else models:
        own = [s for s in shards if s.key.model == model.position]
        progress.append(
            ModelProgress(
                model=model.model,
                phase=model.phase,
                shards_total=len(own),
                shards_done=sum(s.state == "done" for s in own),
                resolved_path=model.resolved_path,
                revision=model.revision,
            )
        )
    tokens_per_second, eta = _throughput(job, shards, time.time())
    return JobView(
        id=job.id,
        name=job.spec.name,
        state=job.state,
        created_at=datetime.fromtimestamp(job.created_at, tz=UTC),
        started_at=_when(job.started_at),
        finished_at=_when(job.finished_at),
        models=progress,
        request_counts=RequestCounts(
            # before validation has cut the job into shards, the total is estimated from the spec
            total=sum(s.requests for s in shards) if shards else planned_requests(job.spec),
            completed=sum(s.requests for s in shards if s.state == "done"),
            failed=sum(s.requests for s in shards if s.state == "failed"),
        ),
        tokens_processed=sum(s.tokens for s in shards if s.state == "done"),
        tokens_per_second=tokens_per_second,
        eta_seconds=eta,
        error=job.error,
        results=result_locations(job, planned=bool(shards)),
        spec=job.spec if include_spec else None,
    )


def job_list(store: JobStore, jobs: list[JobRecord], count: int) -> JobList:
    """A page of job views (their shards and models read in one query each, whatever the page size)."""
    ids = [job.id for job in jobs]
    shards, models = store.shards_of(ids), store.models_of(ids)
    views = [job_view(store, job, shards=shards.get(job.id, []), models=models.get(job.id, [])) for job in jobs]
    return JobList(data=views, count=count)
