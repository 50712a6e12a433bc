"""The asynchronous :class:`AsyncClient`: performs the steps of :mod:`moralscope.client.core` with ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
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


class AsyncClient:
    """The asynchronous twin of :class:`~moralscope.client.sync_client.Client`: the same methods, awaitable.

    >>> async with AsyncClient("http://127.0.0.1:8000") as client:   # doctest: +SKIP
    ...     job = await client.submit("examples/quickstart.yaml")
    ...     await client.wait(job.id, progress=True)
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = core.base_url_from(base_url)
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff, max_wait=max_wait)
        self._retrying = self.retry_policy.async_caller()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=core.auth_headers(api_key)
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- performing steps ------------------------------------------------------------------------

    async def _run(self, operation: steps.Operation[T]) -> T:
        driver = steps.Steps(operation)
        with contextlib.closing(driver):
            for step in driver:
                try:
                    driver.reply(await self._perform(step))
                except Exception as exc:
                    driver.fail(exc)
        return driver.result

    async def _perform(self, step: steps.Step) -> Any:
        if isinstance(step, steps.Call):
            return await self._retrying(self._send, step)
        if isinstance(step, steps.Pause):
            await asyncio.sleep(step.seconds)
            return None
        async with contextlib.aclosing(self._events(step.job_id, step.idle_timeout)) as events:
            async for event in events:
                if step.until(event.job):
                    break
        return None

    async def _send(self, call: steps.Call) -> httpx.Response:
        try:
            response = await self._http.request(call.method, call.path, **call.options())
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        return raise_for_status(response)

    async def _events(self, job_id: str, idle_timeout: float | None) -> AsyncGenerator[JobEvent, None]:
        timeout = httpx.Timeout(self._http.timeout.connect, read=idle_timeout)
        try:
            async with httpx_sse.aconnect_sse(self._http, "GET", core.events_path(job_id), timeout=timeout) as source:
                if source.response.is_error:
                    await source.response.aread()
                    raise error_from_response(source.response)
                async for sse in source.aiter_sse():
                    if (event := core.decode_event(sse)) is not None:
                        yield event
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc

    # -- the API (each method runs the operation of the same name in core) ----------------------

    async def health(self) -> dict[str, Any]:
        """The server's liveness answer (``GET /healthz``); raises UnavailableError when unreachable."""
        return await self._run(core.health())

    async def upload(self, path: str | Path, *, format: str | None = None) -> UploadView:
        """Upload a data file for a custom benchmark; name the returned ``ref`` as its ``data``."""
        return await self._run(core.upload(path, fmt=format))

    async def submit(self, spec: SpecSource, *, idempotency_key: str | None = None) -> JobView:
        """Submit a job (a JobSpec, a dict, or a YAML/JSON file path); retried safely (Idempotency-Key).

        A custom benchmark's data file on this machine is uploaded first (``upload``) and named by its ref.
        """
        return await self._run(core.submit(spec, idempotency_key=idempotency_key))

    async def get(self, job_id: str) -> JobView:
        """The job's current view."""
        return await self._run(core.get(job_id))

    async def list(self, state: JobState | str | None = None, *, limit: int = 50, offset: int = 0) -> JobList:
        """Jobs of this API key, newest first (optionally only those in ``state``)."""
        return await self._run(core.list_jobs(state, limit=limit, offset=offset))

    async def cancel(self, job_id: str) -> JobView:
        """Cancel the job (a finished job stays as it is)."""
        return await self._run(core.cancel(job_id))

    def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's server-sent events (``state``, ``progress``, ``log``, then ``end``) until it ends."""
        return self._events(job_id, None)

    async def wait(
        self,
        job_id: str,
        *,
        progress: bool = False,
        poll_interval: float = 1.0,
        timeout: float | None = None,
        on_update: Callable[[JobView], None] | None = None,
    ) -> JobView:
        """Wait until the job ends; return its view (raise :class:`JobFailed` if it failed).

        Progress comes from the events stream (a rich progress bar with ``progress=True``, and
        ``on_update`` with each new view); if the stream is unavailable, the job is polled.
        """
        operation = core.wait(
            job_id, progress=progress, poll_interval=poll_interval, timeout=timeout, on_update=on_update
        )
        return await self._run(operation)

    async def download(self, job_id: str, path: str | Path, *, table: Table = "samples") -> Path:
        """Save a result table's Parquet file to ``path``."""
        return await self._run(core.download(job_id, path, table=table))

    async def report(self, jobs: str | Sequence[str], path: str | Path) -> Path:
        """Save the HTML report (figures and tables of the metrics) of a completed job, or one page of several
        (a sweep run as separate jobs: the cells whose prompts agree are combined), to ``path``."""
        return await self._run(core.report(jobs, path))

    async def results_arrow(self, job_id: str, *, table: Table = "samples") -> pa.Table:
        """A result table as a pyarrow Table."""
        return await self._run(core.results_arrow(job_id, table=table))

    async def results(self, job_id: str, table: Table = "samples") -> pl.DataFrame:
        """A result table as a polars DataFrame."""
        return await self._run(core.results(job_id, table=table))
