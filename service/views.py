"""Public job views (:class:`schemas.jobs.JobView`) built from the store: progress, throughput, ETA.

Two sources: the shards (durable: a request counts as *committed* once the shard holding it is written
and recorded; tokens requested and computed, error rows) and each running model's live progress
(:mod:`service.runner.progress`: requests whose results are in, including those of shards not written
yet, rates and an ETA measured in the current run). Live progress counts only while the job runs and
only if it was written under the job's current claim (its lease epoch; a model clears it when it
starts), so a resumed job neither shows its previous life's rates nor counts uncommitted work that was
lost. Without live progress (a job
resumed by an older runner, or before its first batch) throughput and ETA fall back to the shards
finished in the current run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from schemas.jobs import (
    FailedCell,
    JobList,
    JobState,
    JobView,
    ModelProgress,
    RequestCounts,
    ResultLocations,
)
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


def _hit_rate(requested: int, computed: int) -> float | None:
    return 1.0 - computed / requested if requested else None


def _live(job: JobRecord, model: ModelRecord) -> dict[str, Any] | None:
    """The model's live progress if it belongs to the current claim of a running job (its lease epoch)."""
    progress = model.progress
    if job.state.is_terminal or not progress or progress.get("epoch") != job.lease_epoch:
        return None
    return progress


def _model_view(job: JobRecord, model: ModelRecord, own: list[ShardRecord], now: float) -> ModelProgress:
    done = [s for s in own if s.state == "done"]
    requested, computed = sum(s.tokens for s in done), sum(s.computed_tokens for s in done)
    total, committed = sum(s.requests for s in own), sum(s.requests for s in done)
    live = _live(job, model)
    running = live is not None and model.phase in ("reason", "score")
    eta = None
    if model.phase == "done":
        eta = 0.0
    elif running and live and live.get("eta_seconds") is not None:
        eta = max(0.0, float(live["eta_seconds"]) - (now - float(live["updated_at"])))
    return ModelProgress(
        model=model.model,
        phase=model.phase,
        shards_total=len(own),
        shards_done=len(done),
        requests_total=total,
        requests_done=max(committed, int(live["requests_done"])) if live else committed,
        errors=sum(s.errors for s in done),
        tokens_requested=requested,
        tokens_computed=computed,
        cache_hit_rate=_hit_rate(requested, computed),
        rows_per_second=live.get("rows_per_second") if running and live else None,
        tokens_per_second=live.get("tokens_per_second") if running and live else None,
        computed_tokens_per_second=live.get("computed_tokens_per_second") if running and live else None,
        eta_seconds=eta,
        actors=live.get("actors") if running and live else None,
        retries=int(live.get("retries", 0)) if live else 0,
        resolved_path=model.resolved_path,
        revision=model.revision,
    )


def _shard_throughput(job: JobRecord, shards: list[ShardRecord], now: float) -> tuple[float | None, float | None]:
    """(tokens per second, seconds to completion) from the shards finished in the current run."""
    start = job.run_started_at
    if start is None:
        return None, None
    recent = [s for s in shards if s.state == "done" and s.finished_at is not None and s.finished_at >= start]
    elapsed = now - start
    if not recent or elapsed <= 0:
        return None, None
    remaining = sum(s.requests for s in shards if s.state == "pending")
    requests_per_second = sum(s.requests for s in recent) / elapsed
    return sum(s.tokens for s in recent) / elapsed, remaining / requests_per_second if requests_per_second else None


def _throughput(
    job: JobRecord, shards: list[ShardRecord], models: list[ModelProgress], now: float
) -> tuple[float | None, float | None]:
    """(tokens per second, seconds to completion) of the job."""
    if job.state.is_terminal:
        return None, (0.0 if job.state == JobState.COMPLETED else None)
    running = [m for m in models if m.tokens_per_second is not None]
    if not running:
        return _shard_throughput(job, shards, now)
    rate = sum(m.tokens_per_second or 0.0 for m in running)
    # models run side by side: the job ends with its slowest running model; a model still waiting starts
    # when resources free up, so its work comes on top, at the rate the running models show
    eta: float | None = max((m.eta_seconds for m in running if m.eta_seconds is not None), default=None)
    rows_per_second = sum(m.rows_per_second or 0.0 for m in running)
    waiting = sum(m.requests_total - m.requests_done for m in models if m.phase in ("pending", "waiting", "loading"))
    if eta is not None and waiting:
        eta = eta + waiting / rows_per_second if rows_per_second else None
    return rate, eta


def job_view(
    store: JobStore,
    job: JobRecord,
    *,
    include_spec: bool = True,
    shards: list[ShardRecord] | None = None,
    models: list[ModelRecord] | None = None,
) -> JobView:
    """The API's view of one job (its ``shards`` and ``models`` are read from the store unless given)."""
    now = time.time()
    shards = store.shards(job.id) if shards is None else shards
    records = store.models(job.id) if models is None else models
    progress = [_model_view(job, m, [s for s in shards if s.key.model == m.position], now) for m in records]
    done = [s for s in shards if s.state == "done"]
    requested, computed = sum(s.tokens for s in done), sum(s.computed_tokens for s in done)
    committed = sum(s.requests for s in done)
    tokens_per_second, eta = _throughput(job, shards, progress, now)
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
            completed=max(committed, sum(m.requests_done for m in progress)),
            committed=committed,
            failed=sum(s.requests for s in shards if s.state == "failed"),
            errors=sum(s.errors for s in done),
        ),
        tokens_processed=requested,
        tokens_computed=computed,
        cache_hit_rate=_hit_rate(requested, computed),
        tokens_per_second=tokens_per_second,
        eta_seconds=eta,
        error=job.error,
        failed_cells=[FailedCell.model_validate(cell) for cell in job.failed_cells or []],
        results=result_locations(job, planned=bool(shards)),
        spec=job.spec if include_spec else None,
    )


def job_list(store: JobStore, jobs: list[JobRecord], count: int) -> JobList:
    """A page of job views (their shards and models read in one query each, whatever the page size)."""
    ids = [job.id for job in jobs]
    shards, models = store.shards_of(ids), store.models_of(ids)
    views = [job_view(store, job, shards=shards.get(job.id, []), models=models.get(job.id, [])) for job in jobs]
    return JobList(data=views, count=count)
