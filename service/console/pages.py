"""Console pages about jobs: the list at ``/``, a job's page, its cancel button, the list's live stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sse_starlette import EventSourceResponse

from schemas.errors import InvalidInputError
from schemas.jobs import JobState
from service import jobs
from service.api.deps import RunnerDep, StoreDep
from service.api.jobs import JobId
from service.console.deps import FormUserDep, UserDep
from service.console.job_page import job_page_context
from service.console.live import MAX_JOBS, jobs_event_stream
from service.console.render import REPORT_HEADERS, page, see_other
from service.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 50


def _state(value: str) -> JobState | None:
    if not value:
        return None
    try:
        return JobState(value)
    except ValueError:
        allowed = ", ".join(s.value for s in JobState)
        raise InvalidInputError(f"state must be one of {allowed}, got {value!r}", field="state") from None


@router.get("/", response_class=HTMLResponse)
def jobs_list(
    request: Request,
    user: UserDep,
    store: StoreDep,
    state: Annotated[str, Query(max_length=32)] = "",
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> HTMLResponse:
    selected = _state(state)
    listing = jobs.list_jobs(store=store, principal=user.principal, state=selected, limit=PAGE_SIZE, offset=offset)
    return page(
        request,
        user.visit,
        "jobs.html",
        nav="jobs",
        jobs=listing,
        state=selected,
        states=list(JobState),
        offset=offset,
        page_size=PAGE_SIZE,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_detail(request: Request, job_id: JobId, user: UserDep, store: StoreDep) -> HTMLResponse:
    context = job_page_context(store=store, principal=user.principal, job_id=job_id)
    return page(request, user.visit, "job.html", nav="jobs", **context)


@router.get("/jobs/{job_id}/report", response_class=HTMLResponse)
def embedded_report(job_id: JobId, user: UserDep, store: StoreDep) -> HTMLResponse:
    """The job's report.html for the job page's frame: inline (the API's copy is a download), sandboxed."""
    result = jobs.result_file(store=store, principal=user.principal, job_id=job_id, name="report")
    return HTMLResponse(result.files.read_text(result.relative), headers=REPORT_HEADERS)


@router.post("/jobs/{job_id}/cancel")
def cancel(request: Request, job_id: JobId, user: FormUserDep, store: StoreDep, runner: RunnerDep) -> RedirectResponse:
    jobs.cancel_job(store=store, principal=user.principal, job_id=job_id, runner=runner)
    return see_other(request, user.visit, f"/jobs/{job_id}")


@router.get("/events")
def live_jobs(
    user: UserDep,
    store: StoreDep,
    job: Annotated[list[str], Query(max_length=MAX_JOBS, description="Ids of the jobs to follow.")],
) -> EventSourceResponse:
    """The list page's live stream: ``state``/``progress``/``end`` events of the given jobs (see live.py)."""
    return EventSourceResponse(
        jobs_event_stream(store, user.principal.owner, job),
        ping=15,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
