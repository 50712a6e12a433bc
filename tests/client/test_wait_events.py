"""``wait`` and ``events`` of both clients against the real app on uvicorn (the runner is off: a job stays
queued until the test cancels it). One operation in moralscope.client.core serves both clients, so
every test runs on both; the last one checks that their public methods cannot drift apart.
"""

from __future__ import annotations

import inspect
import threading
import time

import pytest
from client_support import Fault, LiveApp, open_client, tiny_spec

from moralscope import AsyncClient, Client
from schemas.errors import NotFoundError
from schemas.jobs import JobState, JobView

KINDS = ["sync", "async"]


def _cancel_once_following(live: LiveApp, job_id: str, *, watched: str = "/events") -> threading.Thread:
    """Cancel the job (with another client) once the waiting client has requested ``watched``."""

    def run() -> None:
        deadline = time.monotonic() + 20
        while not live.faults.seen("GET", f"/v1/jobs/{job_id}{watched}") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # let the stream send its first event (or the client poll a few times)
        with open_client("sync", live.url) as other:
            other.cancel(job_id)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("kind", KINDS)
def test_wait_follows_the_events_with_a_progress_bar(
    live: LiveApp, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_client(kind, live.url) as client:
        job = client.submit(tiny_spec(name=f"wait-{kind}"))
        canceller = _cancel_once_following(live, job.id)
        seen: list[JobView] = []
        view = client.wait(job.id, progress=True, on_update=seen.append, timeout=30)
        canceller.join()
    assert view.state == JobState.CANCELLED
    assert next(v.state for v in seen) == JobState.QUEUED
    assert seen[-1].state == JobState.CANCELLED
    assert len(live.faults.seen("GET", f"/v1/jobs/{job.id}")) == 1  # one look, then the stream: no polling
    assert f"{job.id} cancelled" in capsys.readouterr().out  # the progress bar's last line


@pytest.mark.parametrize("kind", KINDS)
def test_wait_polls_when_the_stream_is_unavailable(live: LiveApp, kind: str) -> None:
    with open_client(kind, live.url) as client:
        job = client.submit(tiny_spec(name=f"poll-{kind}"))
        live.faults.add("GET", f"/v1/jobs/{job.id}/events", Fault(503))
        canceller = _cancel_once_following(live, job.id)
        view = client.wait(job.id, poll_interval=0.1, timeout=30)
        canceller.join()
    assert view.state == JobState.CANCELLED
    assert len(live.faults.seen("GET", f"/v1/jobs/{job.id}")) >= 3  # the first look, then polls


@pytest.mark.parametrize("kind", KINDS)
def test_wait_times_out_on_a_silent_stream(live: LiveApp, kind: str) -> None:
    with open_client(kind, live.url) as client:
        job = client.submit(tiny_spec(name=f"timeout-{kind}"))
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=rf"job {job.id} still queued after 1.0 s"):
            client.wait(job.id, poll_interval=0.1, timeout=1.0)
        assert 1.0 <= time.monotonic() - started < 5  # the stream's read timeout is the time left
        client.cancel(job.id)


@pytest.mark.parametrize("kind", KINDS)
def test_events_of_a_job_and_of_no_job(live: LiveApp, kind: str) -> None:
    with open_client(kind, live.url) as client:
        job = client.submit(tiny_spec(name=f"events-{kind}"))
        client.cancel(job.id)
        events = list(client.events(job.id))
        with pytest.raises(NotFoundError):
            list(client.events("job_missing"))
    assert [e.type for e in events][-2:] == ["state", "end"]
    assert events[-1].job.state == JobState.CANCELLED
    assert all(e.job.id == job.id for e in events)


def test_both_clients_offer_the_same_methods() -> None:
    """Same names, same parameters (return types differ only by being awaitable or async-iterable)."""

    def public(cls: type) -> dict[str, list[inspect.Parameter]]:
        return {
            name: list(inspect.signature(member).parameters.values())
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_") or name == "__init__"
        }

    sync, asynchronous = public(Client), public(AsyncClient)
    assert sync.pop("close")
    assert asynchronous.pop("aclose")
    assert sync.keys() == asynchronous.keys()
    for name, parameters in sync.items():
        if name == "__init__":  # the transport's type differs: httpx.BaseTransport vs AsyncBaseTransport
            parameters = [p for p in parameters if p.name != "transport"]
            assert [p for p in asynchronous[name] if p.name != "transport"] == parameters
        else:
            assert asynchronous[name] == parameters, name
