"""The synchronous :class:`Client`: performs the steps of :mod:`moralscope.client.core` with ``httpx.Client``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import httpx_sse
import polars as pl
import pyarrow as pa

from moralscope.client import core, steps
from moralscope.client.core import SpecSource, Table
from moralscope.client.errors import error_from_response, raise_for_status, unreachable
from moralscope.client.retrying import RetryPolicy
from schemas.jobs import JobEvent, JobList, JobState, JobView
from schemas.uploads import UploadView

T = TypeVar("T")


class Client:
    """A synchronous client of a moralscope server.

    ``retries``, ``backoff`` and ``max_wait`` shape the retries (:mod:`moralscope.client.retrying`).

    >>> client = Client("http://127.0.0.1:8000", api_key="...")      # doctest: +SKIP
    >>> job = client.submit("examples/quickstart.yaml")              # doctest: +SKIP
    >>> client.wait(job.id, progress=True)                           # doctest: +SKIP
    >>> client.results(job.id, table="metrics")                      # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = core.base_url_from(base_url)
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff, max_wait=max_wait)
        self._retrying = self.retry_policy.caller()
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=core.auth_headers(api_key)
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- performing steps ------------------------------------------------------------------------

    def _run(self, operation: steps.Operation[T]) -> T:
        driver = steps.Steps(operation)
        with contextlib.closing(driver):
            for step in driver:
                try:
                    driver.reply(self._perform(step))
                except Exception as exc:
                    driver.fail(exc)
        return driver.result

    def _perform(self, step: steps.Step) -> Any:
        if isinstance(step, steps.Call):
            return self._retrying(self._send, step)
        if isinstance(step, steps.Pause):
            time.sleep(step.seconds)
            return None
        with contextlib.closing(self._events(step.job_id, step.idle_timeout)) as events:
            for event in events:
                if step.until(event.job):
                    break
        return None

    def _send(self, call: steps.Call) -> httpx.Response:
        try:
            response = self._http.request(call.method, call.path, **call.options())
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        return raise_for_status(response)

    def _events(self, job_id: str, idle_timeout: float | None) -> Generator[JobEvent, None, None]:
        timeout = httpx.Timeout(self._http.timeout.connect, read=idle_timeout)
        try:
            with httpx_sse.connect_sse(self._http, "GET", core.events_path(job_id), timeout=timeout) as source:
                if source.response.is_error:
                    source.response.read()
                    raise error_from_response(source.response)
                for sse in source.iter_sse():
                    if (event := core.decode_event(sse)) is not None:
                        yield event
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc

    # -- the API (each method runs the operation of the same name in core) ----------------------

    def health(self) -> dict[str, Any]:
        """The server's liveness answer (``GET /healthz``); raises UnavailableError when unreachable."""
        return self._run(core.health())

    def upload(self, path: str | Path, *, format: str | None = None) -> UploadView:
        """Upload a data file for a custom benchmark; name the returned ``ref`` as its ``data``."""
        return self._run(core.upload(path, fmt=format))

    def submit(self, spec: SpecSource, *, idempotency_key: str | None = None) -> JobView:
        """Submit a job (a JobSpec, a dict, or a YAML/JSON file path); retried safely (Idempotency-Key).

        A custom benchmark's data file on this machine is uploaded first (``upload``) and named by its ref.
        """
        return self._run(core.submit(spec, idempotency_key=idempotency_key))

    def get(self, job_id: str) -> JobView:
        """The job's current view."""
        return self._run(core.get(job_id))

    def list(self, state: JobState | str | None = None, *, limit: int = 50, offset: int = 0) -> JobList:
        """Jobs of this API key, newest first (optionally only those in ``state``)."""
        return self._run(core.list_jobs(state, limit=limit, offset=offset))

    def cancel(self, job_id: str) -> JobView:
        """Cancel the job (a finished job stays as it is)."""
        return self._run(core.cancel(job_id))

    def events(self, job_id: str) -> Iterator[JobEvent]:
        """The job's server-sent events (``state``, ``progress``, ``log``, then ``end``) until it ends."""
        return self._events(job_id, None)

    def wait(
        self,
        job_id: str,
        *,
        progress: bool = False,
        poll_interval: float = 1.0,
        timeout: float | None = None,
        on_update: Callable[[JobView], None] | None = None,
    ) -> JobView:
        """Block until the job ends; return its view (raise :class:`JobFailed` if it failed).

        Progress comes from the events stream (a rich progress bar with ``progress=True``, and
        ``on_update`` with each new view); if the stream is unavailable, the job is polled.
        """
        operation = core.wait(
            job_id, progress=progress, poll_interval=poll_interval, timeout=timeout, on_update=on_update
        )
        return self._run(operation)

    def download(self, job_id: str, path: str | Path, *, table: Table = "samples") -> Path:
        """Save a result table's Parquet file to ``path``."""
        return self._run(core.download(job_id, path, table=table))

    def report(self, jobs: str | Sequence[str], path: str | Path) -> Path:
        """Save the HTML report (figures and tables of the metrics) of a completed job, or one page of several
        (a sweep run as separate jobs: the cells whose prompts agree are combined), to ``path``."""
        return self._run(core.report(jobs, path))

    def results_arrow(self, job_id: str, *, table: Table = "samples") -> pa.Table:
        """A result table as a pyarrow Table."""
        return self._run(core.results_arrow(job_id, table=table))

    def results(self, job_id: str, table: Table = "samples") -> pl.DataFrame:
        """A result table as a polars DataFrame."""
        return self._run(core.results(job_id, table=table))
