"""``/v1/jobs``: submit, list, inspect, cancel, follow (server-sent events) and download results."""

from __future__ import annotations

import io
import json
import math
from typing import Annotated, Any, Literal

import pyarrow.csv as pacsv
from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from sse_starlette import EventSourceResponse

from schemas.jobs import JobList, JobState, JobView
from schemas.spec import JobSpec
from service import jobs
from service.api.deps import PrincipalDep, RunnerDep, SettingsDep, StoreDep
from service.api.errors import ERROR_RESPONSES
from service.api.events import job_event_response

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JobId = Annotated[str, Path(min_length=1, max_length=64, description="The job's id, as returned on submission.")]
PARQUET = "application/vnd.apache.parquet"


@router.post("", status_code=201, summary="Submit a job")
def create_job(
    spec: JobSpec,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    runner: RunnerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Resubmitting with the same key returns the same job instead of a new one.",
        ),
    ] = None,
) -> JobView:
    view, created = jobs.submit_job(
        store=store, settings=settings, principal=principal, spec=spec, idempotency_key=idempotency_key, runner=runner
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return view


@router.get("", summary="List jobs, newest first")
def list_jobs(
    store: StoreDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Jobs per page.")] = 20,
    offset: Annotated[int, Query(ge=0, le=2**62, description="Jobs to skip.")] = 0,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
) -> JobList:
    return jobs.list_jobs(store=store, principal=principal, state=state, limit=limit, offset=offset)


@router.get("/{job_id}", summary="A job's state, progress and result locations")
def get_job(job_id: JobId, store: StoreDep, principal: PrincipalDep) -> JobView:
    return jobs.get_job(store=store, principal=principal, job_id=job_id)


@router.post("/{job_id}/cancel", summary="Cancel a job")
def cancel_job(job_id: JobId, store: StoreDep, principal: PrincipalDep, runner: RunnerDep) -> JobView:
    return jobs.cancel_job(store=store, principal=principal, job_id=job_id, runner=runner)


@router.get(
    "/{job_id}/events",
    summary="Follow a job: server-sent events (JobEvent JSON) until it ends",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`state`, `progress`, `log`, `end` events."}},
)
def job_events(job_id: JobId, store: StoreDep, principal: PrincipalDep) -> EventSourceResponse:
    store.get_job(job_id, owner=principal.owner)  # 404 before the stream starts
    return job_event_response(store, job_id)


def _download(result: jobs.ResultFile, media_type: str) -> Response:
    local = result.files.local_path(result.relative)
    if local is not None:
        return FileResponse(local, media_type=media_type, filename=result.filename)
    return StreamingResponse(
        result.files.iter_bytes(result.relative),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{result.filename}"'},
    )


@router.get(
    "/{job_id}/results/samples",
    summary="The samples table (Parquet)",
    response_class=Response,
    responses={200: {"content": {PARQUET: {}}, "description": "samples.parquet"}},
)
def samples(job_id: JobId, store: StoreDep, principal: PrincipalDep) -> Response:
    return _download(jobs.result_file(store=store, principal=principal, job_id=job_id, name="samples"), PARQUET)


def _json_safe(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


@router.get(
    "/{job_id}/results/metrics",
    summary="The metrics table (Parquet, CSV or JSON rows)",
    response_class=Response,
    responses={200: {"content": {PARQUET: {}, "text/csv": {}, "application/json": {}}, "description": "metrics"}},
)
def metrics(
    job_id: JobId,
    store: StoreDep,
    principal: PrincipalDep,
    format: Annotated[Literal["parquet", "csv", "json"], Query(description="File format.")] = "parquet",
) -> Response:
    result = jobs.result_file(store=store, principal=principal, job_id=job_id, name="metrics")
    if format == "parquet":
        return _download(result, PARQUET)
    table = result.files.read_parquet(result.relative)
    if format == "json":
        rows = [{k: _json_safe(v) for k, v in row.items()} for row in table.to_pylist()]
        return JSONResponse(json.loads(json.dumps(rows, allow_nan=False)))
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{result.filename.removesuffix(".parquet")}.csv"'},
    )


@router.get(
    "/{job_id}/results/report",
    summary="The report (HTML: figures and tables of the metrics)",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "report.html"}},
)
def report(job_id: JobId, store: StoreDep, principal: PrincipalDep) -> Response:
    return _download(jobs.result_file(store=store, principal=principal, job_id=job_id, name="report"), "text/html")


@router.get(
    "/{job_id}/results/spec",
    summary="The spec with resolved versions (spec.json)",
    responses={200: {"content": {"application/json": {}}}},
)
def resolved_spec(job_id: JobId, store: StoreDep, principal: PrincipalDep) -> JSONResponse:
    result = jobs.result_file(store=store, principal=principal, job_id=job_id, name="spec")
    return JSONResponse(json.loads(result.files.read_text(result.relative)))
