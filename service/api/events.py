"""Server-sent events of one job: ``state`` and ``progress`` as they change, ``log`` lines, then ``end``.

The stream polls the store (the runner may live in another process after a restart, and the store is
the one source of truth). Each event is ``event: <type>`` plus ``data: <JobEvent JSON>``; a comment line
is sent every ``keepalive`` seconds so proxies keep an idle stream open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from schemas.jobs import JobEvent, JobView
from service.store import JobStore
from service.views import job_view


def _format(event_id: int, event: JobEvent) -> str:
    return f"id: {event_id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


def _progress_signature(view: JobView) -> tuple[object, ...]:
    return (
        view.request_counts,
        view.tokens_processed,
        tuple((m.phase, m.shards_done, m.shards_total) for m in view.models),
    )


async def job_event_stream(
    store: JobStore, job_id: str, *, poll_interval: float = 0.5, keepalive: float = 15.0
) -> AsyncIterator[str]:
    """Events of ``job_id`` until it reaches a terminal state."""
    sent = 0
    last_log_id = 0
    last_state = None
    last_progress: tuple[object, ...] | None = None
    last_write = time.monotonic()

    def snapshot() -> tuple[JobView, list[tuple[int, str, str | None]]]:
        job = store.get_job(job_id)
        events = store.events(job_id, after_id=last_log_id)
        return job_view(store, job, include_spec=False), [(e.id, e.type, e.message) for e in events]

    while True:
        view, new_events = await run_in_threadpool(snapshot)
        outgoing: list[JobEvent] = []
        state_message = None
        for event_id, type_, message in new_events:
            last_log_id = event_id
            if type_ == "state":
                state_message = message
            else:
                outgoing.append(JobEvent(type="log", job=view, message=message))
        if view.state != last_state:
            outgoing.append(JobEvent(type="state", job=view, message=state_message or view.state.value))
            last_state = view.state
            last_progress = _progress_signature(view)
        elif _progress_signature(view) != last_progress:
            outgoing.append(JobEvent(type="progress", job=view))
            last_progress = _progress_signature(view)
        if view.state.is_terminal:
            outgoing.append(JobEvent(type="end", job=view, message=view.error or view.state.value))
        for event in outgoing:
            sent += 1
            yield _format(sent, event)
        if view.state.is_terminal:
            return
        if outgoing:
            last_write = time.monotonic()
        elif time.monotonic() - last_write >= keepalive:
            last_write = time.monotonic()
            yield ": keepalive\n\n"
        await asyncio.sleep(poll_interval)
