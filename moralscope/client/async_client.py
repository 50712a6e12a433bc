"""The asynchronous :class:`AsyncClient`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from moralscope.client.protocol import SpecSource, Table, _EventDecoder, _Protocol
from schemas.errors import UnavailableError
from schemas.jobs import JobEvent, JobList, JobState, JobView


class AsyncClient(_Protocol):
    """The asynchronous twin of :class:`Client` (same methods, awaitable)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, backoff)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=self._headers()
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise UnavailableError(f"cannot reach moralscope at {self.base_url}: {exc}") from exc
            if response is not None and (not self._should_retry(response) or attempt == self.retries):
                return self._checked(response)
            await asyncio.sleep(self._delay(attempt))
        raise AssertionError("unreachable")

    async def health(self) -> dict[str, Any]:
        return dict((await self._request("GET", "/healthz")).json())

    async def submit(self, spec: SpecSource, *, idempotency_key: str | None = None) -> JobView:
        body, headers = self._submission(spec, idempotency_key)
        response = await self._request("POST", "/v1/jobs", json=body, headers=headers)
        return JobView.model_validate_json(response.content)

    async def get(self, job_id: str) -> JobView:
        return JobView.model_validate_json((await self._request("GET", f"/v1/jobs/{job_id}")).content)

    async def list(self, state: JobState | str | None = None, *, limit: int = 50, offset: int = 0) -> JobList:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state is not None:
            params["state"] = str(JobState(state))
        return JobList.model_validate_json((await self._request("GET", "/v1/jobs", params=params)).content)

    async def cancel(self, job_id: str) -> JobView:
        return JobView.model_validate_json((await self._request("POST", f"/v1/jobs/{job_id}/cancel")).content)

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        async with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
            if response.status_code >= 400:
                await response.aread()
                self._checked(response)
            decoder = _EventDecoder()
            async for line in response.aiter_lines():
                if (event := decoder.feed(line)) is not None:
                    yield event

    async def wait(self, job_id: str, *, poll_interval: float = 1.0, timeout: float | None = None) -> JobView:
        """Wait until the job ends (events stream, falling back to polling); JobFailed if it failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        view = await self.get(job_id)
        try:
            async for event in self.events(job_id):
                view = event.job
                if view.state.is_terminal or (deadline and time.monotonic() > deadline):
                    break
        except (httpx.HTTPError, UnavailableError, ValueError):
            pass
        while not view.state.is_terminal:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {view.state.value} after {timeout} s")
            await asyncio.sleep(poll_interval)
            view = await self.get(job_id)
        return self._finished(view)

    async def download(self, job_id: str, path: str | Path, *, table: Table = "samples") -> Path:
        return self._save(await self._request("GET", self._results_path(job_id, table)), path)

    async def report(self, job_id: str, path: str | Path) -> Path:
        return self._save(await self._request("GET", f"/v1/jobs/{job_id}/results/report"), path)

    async def results_arrow(self, job_id: str, *, table: Table = "samples") -> pa.Table:
        response = await self._request("GET", self._results_path(job_id, table))
        return pq.read_table(pa.BufferReader(response.content))

    async def results(self, job_id: str, table: Table = "samples") -> pl.DataFrame:
        frame = pl.from_arrow(await self.results_arrow(job_id, table=table))
        assert isinstance(frame, pl.DataFrame)
        return frame
