"""Server-sent events of one job: ``state`` and ``progress`` as they change, ``log`` lines, then ``end``.

The stream polls the store (the runner may live in another process after a restart, and the store is
the one source of truth). On the wire (sse-starlette's :class:`EventSourceResponse`), each event is
``id: <n>`` (counting from 1 on each connection), ``event: <type>`` and ``data: <JobEvent JSON>``,
lines ending in ``\\n``; a ``: ping`` comment every :data:`KEEPALIVE_SECONDS` keeps proxies from closing
an idle stream, and streams end when the server shuts down. Browsers read it with ``EventSource``
(named events), scripts with any SSE client (the SDK uses httpx-sse).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from schemas.jobs import JobEvent, JobView
from service.store import JobStore
from service.views import job_view

KEEPALIVE_SECONDS = 15.0
"""Seconds between keepalive comments."""
POLL_SECONDS = 0.5
"""Seconds between looks at the store."""
_SEPARATOR = "\n"


def _progress_signature(view: JobView) -> tuple[object, ...]:
    return (
        view.request_counts,
        view.tokens_processed,
        tuple((m.phase, m.shards_done, m.shards_total) for m in view.models),
    )


async def job_events(store: JobStore, job_id: str, *, poll_interval: float = POLL_SECONDS) -> AsyncIterator[JobEvent]:
    """Events of ``job_id`` until it reaches a terminal state (the job must exist)."""
    last_log_id = 0
    last_state = None
    last_progress: tuple[object, ...] | None = None

    def snapshot() -> tuple[JobView, list[tuple[int, str, str | None]]]:
        job = store.get_job(job_id)
        events = store.events(job_id, after_id=last_log_id)
        return job_view(store, job, include_spec=False), [(e.id, e.type, e.message) for e in events]

    while True:
        view, new_events = await run_in_threadpool(snapshot)
        state_message = None
        for event_id, type_, message in new_events:
            last_log_id = event_id
            if type_ == "state":
                state_message = message
            else:
                yield JobEvent(type="log", job=view, message=message)
        if view.state != last_state:
            yield JobEvent(type="state", job=view, message=state_message or view.state.value)
            last_state = view.state
            last_progress = _progress_signature(view)
        elif _progress_signature(view) != last_progress:
            yield JobEvent(type="progress", job=view)
            last_progress = _progress_signature(view)
        if view.state.is_terminal:
            yield JobEvent(type="end", job=view, message=view.error or view.state.value)
            return
        await asyncio.sleep(poll_interval)


async def _wire_events(events: AsyncIterator[JobEvent]) -> AsyncIterator[ServerSentEvent]:
    number = 0
    async for event in events:
        number += 1
        yield ServerSentEvent(event.model_dump_json(), event=event.type, id=str(number), sep=_SEPARATOR)


def job_event_response(store: JobStore, job_id: str) -> EventSourceResponse:
    """The ``text/event-stream`` response of ``job_id``'s events (check that the job exists first)."""
    return EventSourceResponse(
        _wire_events(job_events(store, job_id)),
        ping=KEEPALIVE_SECONDS,
        sep=_SEPARATOR,
        headers={"Cache-Control": "no-cache"},
    )
