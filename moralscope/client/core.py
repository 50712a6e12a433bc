"""The SDK's one implementation of every operation, free of I/O (shared by ``Client`` and ``AsyncClient``).

An operation is a generator of steps (:mod:`moralscope.client.steps`) — :class:`Call` (send a request,
retried per the client's policy; the reply is the successful :class:`httpx.Response`), :class:`Pause`
(sleep) and :class:`Follow` (read the job's server-sent events) — that returns its result. A client only
*performs* steps: the sync one with ``httpx.Client`` and ``time.sleep``, the async one with
``httpx.AsyncClient`` and ``asyncio.sleep``. A step that fails is thrown back into the operation, which
may handle it (``wait`` falls back to polling when the event stream breaks). So ``submit``, ``wait``
(with its progress bar, deadline and fallback), ``results`` … are written once and cannot drift apart.
To add an operation: a generator here, and a one-line method with the same signature on each client.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import httpx_sse
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from moralscope.client.progress import ProgressBar
from moralscope.client.steps import STREAM_IDLE_SECONDS, Call, Follow, Operation, Pause
from moralscope.specfile import local_data_files, read_spec_data, with_uploaded_data
from schemas.errors import InvalidInputError, JobFailed, UnavailableError
from schemas.jobs import JobEvent, JobList, JobState, JobView
from schemas.spec import JobSpec
from schemas.uploads import UploadView

T = TypeVar("T")
Table = Literal["samples", "metrics"]
SpecSource = JobSpec | dict[str, Any] | str | Path
DEFAULT_URL = "http://127.0.0.1:8000"


def base_url_from(base_url: str | None) -> str:
    """The server URL: the argument, else ``$MORALSCOPE_URL``, else the local default."""
    return (base_url or os.environ.get("MORALSCOPE_URL") or DEFAULT_URL).rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The Authorization header of ``api_key`` (else ``$MORALSCOPE_API_KEY``); none without a key."""
    key = api_key if api_key is not None else os.environ.get("MORALSCOPE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


# -- decoding ----------------------------------------------------------------------------------------


def events_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/events"


def decode_event(sse: httpx_sse.ServerSentEvent) -> JobEvent | None:
    """The JobEvent of one server-sent event; None for event types this SDK does not know."""
    if sse.event not in ("state", "progress", "log", "end"):
        return None
    return JobEvent.model_validate_json(sse.data)


def finished(view: JobView) -> JobView:
    """A finished job's view; raises JobFailed for a failed one."""
    if view.state == JobState.FAILED:
        raise JobFailed(f"job {view.id} failed: {view.error or 'no reason given'}", job_id=view.id, error=view.error)
    return view


def _results_path(job_id: str, table: Table) -> str:
    if table not in ("samples", "metrics"):
        raise InvalidInputError(f"table must be 'samples' or 'metrics', got {table!r}", field="table")
    return f"/v1/jobs/{job_id}/results/{table}"


# -- operations --------------------------------------------------------------------------------------


def health() -> Operation[dict[str, Any]]:
    response = yield Call("GET", "/healthz")
    return dict(response.json())


def upload(path: str | Path, *, fmt: str | None = None) -> Operation[UploadView]:
    """Upload a custom benchmark's data file; its ``ref`` names it in a spec."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read data file {path}: {exc.strerror or exc}", field="data") from exc
    params = {"filename": path.name, **({"format": fmt} if fmt else {})}
    headers = {"Content-Type": "application/octet-stream"}
    response = yield Call("POST", "/v1/uploads", params=params, content=content, headers=headers)
    return UploadView.model_validate_json(response.content)


def submit(spec: SpecSource, *, idempotency_key: str | None = None) -> Operation[JobView]:
    """The server validates the spec and names any bad field; the key is kept across retries.

    Custom benchmarks' data files on this machine (relative paths: from the spec file's folder) are uploaded
    first and named by their upload reference.
    """
    if isinstance(spec, JobSpec):
        body = spec.model_dump(mode="json", exclude_unset=True)
    elif isinstance(spec, dict):
        body = spec
    else:
        body = read_spec_data(spec)
    local = local_data_files(body, Path(spec).parent if isinstance(spec, str | Path) else Path.cwd())
    if local:
        uploads = {}
        for index, path in local.items():
            uploads[index] = yield from upload(path)
        body = with_uploaded_data(body, uploads)
    headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    response = yield Call("POST", "/v1/jobs", json=body, headers=headers)
    return JobView.model_validate_json(response.content)


def get(job_id: str) -> Operation[JobView]:
    response = yield Call("GET", f"/v1/jobs/{job_id}")
    return JobView.model_validate_json(response.content)


def list_jobs(state: JobState | str | None = None, *, limit: int = 50, offset: int = 0) -> Operation[JobList]:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if state is not None:
        params["state"] = str(JobState(state))
    response = yield Call("GET", "/v1/jobs", params=params)
    return JobList.model_validate_json(response.content)


def cancel(job_id: str) -> Operation[JobView]:
    response = yield Call("POST", f"/v1/jobs/{job_id}/cancel")
    return JobView.model_validate_json(response.content)


class _Watch:
    """What ``wait`` knows: the latest view, the deadline, and who to tell (progress bar, callback)."""

    def __init__(
        self, view: JobView, bar: ProgressBar, on_update: Callable[[JobView], None] | None, timeout: float | None
    ) -> None:
        self.bar, self.on_update, self.timeout = bar, on_update, timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.view = view
        self.see(view)

    def see(self, view: JobView) -> bool:
        """Record a view; True once the job has ended or the deadline has passed (stop following)."""
        self.view = view
        self.bar.update(view)
        if self.on_update is not None:
            self.on_update(view)
        return self.done or self.remaining() == 0

    @property
    def done(self) -> bool:
        return self.view.state.is_terminal

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def next_poll(self, poll_interval: float) -> float:
        """How long to sleep before the next poll; TimeoutError once the deadline has passed."""
        remaining = self.remaining()
        if remaining == 0:
            raise TimeoutError(f"job {self.view.id} still {self.view.state.value} after {self.timeout} s")
        return poll_interval if remaining is None else min(poll_interval, remaining)


def wait(
    job_id: str,
    *,
    progress: bool = False,
    poll_interval: float = 1.0,
    timeout: float | None = None,
    on_update: Callable[[JobView], None] | None = None,
) -> Operation[JobView]:
    """Follow the job's events until it ends (polling when the stream is unavailable); JobFailed if it failed.

    ``on_update`` is called with every new view; ``timeout`` (seconds) raises TimeoutError when exceeded.
    """
    with ProgressBar(progress) as bar:
        watch = _Watch((yield from get(job_id)), bar, on_update, timeout)
        remaining = watch.remaining()
        if not watch.done and remaining != 0:
            idle = STREAM_IDLE_SECONDS if remaining is None else min(STREAM_IDLE_SECONDS, remaining)
            # A stream that breaks or goes silent is not an error: polling below takes over.
            with contextlib.suppress(UnavailableError, httpx.HTTPError, httpx_sse.SSEError, ValueError):
                yield Follow(job_id, until=watch.see, idle_timeout=idle)
        while not watch.done:
            yield Pause(watch.next_poll(poll_interval))
            watch.see((yield from get(job_id)))
    return finished(watch.view)


def results_arrow(job_id: str, *, table: Table = "samples") -> Operation[pa.Table]:
    response = yield Call("GET", _results_path(job_id, table))
    return pq.read_table(pa.BufferReader(response.content))


def results(job_id: str, table: Table = "samples") -> Operation[pl.DataFrame]:
    frame = pl.from_arrow((yield from results_arrow(job_id, table=table)))
    assert isinstance(frame, pl.DataFrame)
    return frame


def download(job_id: str, path: str | Path, *, table: Table = "samples") -> Operation[Path]:
    response = yield Call("GET", _results_path(job_id, table))
    return _save(response, path)


def report(jobs: str | Sequence[str], path: str | Path) -> Operation[Path]:
    """One job's report.html, or one page of several jobs (``GET /v1/reports``: the server combines the cells
    whose prompts agree)."""
    ids = [jobs] if isinstance(jobs, str) else list(jobs)
    if not ids:
        raise InvalidInputError("name at least one job", field="job")
    if len(ids) == 1:
        response = yield Call("GET", f"/v1/jobs/{ids[0]}/results/report")
    else:
        response = yield Call("GET", "/v1/reports", params={"job": ids})
    return _save(response, path)


def _save(response: httpx.Response, path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(response.content)
    return path
