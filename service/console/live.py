"""One event stream for the jobs list: the unfinished jobs of a page, in a single connection.

Browsers open at most six connections per server over HTTP/1.1, so a list of many running jobs cannot
hold one ``/v1/jobs/{id}/events`` stream each. This stream carries the same events for several jobs
(``state``, ``progress``, then ``end`` per job; data: :class:`~schemas.jobs.JobEvent` JSON) and ends
when all of them have ended. Like the per-job stream it polls the store, the one source of truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Literal

from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from schemas.errors import NotFoundError
from schemas.jobs import JobEvent, JobView
from service.store import JobStore
from service.views import job_view

MAX_JOBS = 200
"""The most jobs one stream follows (a page of the list holds fewer)."""


def _signature(view: JobView) -> tuple[object, ...]:
    eta = None if view.eta_seconds is None else round(view.eta_seconds)
    return (view.state, view.request_counts, view.tokens_processed, eta, tuple(view.models))


def _event(type_: Literal["state", "progress", "end"], view: JobView, message: str | None = None) -> ServerSentEvent:
    payload = JobEvent(type=type_, job=view, message=message)
    return ServerSentEvent(payload.model_dump_json(), event=type_)


async def jobs_event_stream(
    store: JobStore, owner: str, job_ids: Sequence[str], *, poll_interval: float = 1.0
) -> AsyncIterator[ServerSentEvent]:
    """Events of ``owner``'s jobs among ``job_ids`` until each has ended (others' ids are ignored)."""
    following = list(dict.fromkeys(job_ids))[:MAX_JOBS]
    sent: dict[str, tuple[object, ...]] = {}

    def snapshot() -> dict[str, JobView | None]:
        views: dict[str, JobView | None] = {}
        for job_id in following:
            try:
                views[job_id] = job_view(store, store.get_job(job_id, owner=owner), include_spec=False)
            except NotFoundError:
                views[job_id] = None
        return views

    while following:
        for job_id, view in (await run_in_threadpool(snapshot)).items():
            if view is None:
                following.remove(job_id)
                continue
            signature = _signature(view)
            previous = sent.get(job_id)
            if signature != previous:
                changed_state = previous is None or previous[0] != view.state
                yield _event("state" if changed_state else "progress", view, view.state.value)
                sent[job_id] = signature
            if view.state.is_terminal:
                yield _event("end", view, view.error or view.state.value)
                following.remove(job_id)
        if following:
            await asyncio.sleep(poll_interval)
