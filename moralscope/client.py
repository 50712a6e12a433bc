"""The Python SDK: ``Client`` and ``AsyncClient`` for the moralscope REST API.

Shaped like httpx: both clients share request building, response decoding and error mapping
(:class:`_Protocol`); they differ only in how a request is sent. Both accept ``transport=`` so tests
can drive the real app in-process (``httpx.ASGITransport``) as well as over a socket.

Errors are the exception tree of :mod:`schemas.errors`, built from the server's
``{"error": {"code", "message", "field"}}`` bodies. Connection errors and 503 are retried with
exponential backoff; 4xx never are. ``submit`` sends an ``Idempotency-Key`` (generated when not
given), so a retried submission never creates a second job.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from moralscope.specfile import local_data_files, read_spec_data, with_uploaded_data
from schemas.errors import (
    AuthError,
    InvalidInputError,
    JobFailed,
    LimitExceededError,
    MoralscopeError,
    NotFoundError,
    UnavailableError,
)
from schemas.jobs import JobEvent, JobList, JobState, JobView
from schemas.spec import JobSpec
from schemas.uploads import UploadView

Table = Literal["samples", "metrics"]
SpecSource = JobSpec | dict[str, Any] | str | Path
DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUS = frozenset({502, 503, 504})


def _error_from_response(response: httpx.Response) -> MoralscopeError:
    """The exception for an error response (the server's error body, or the bare status)."""
    code, message, field = "error", f"HTTP {response.status_code}", None
    try:
        detail = response.json()["error"]
        code, message, field = detail.get("code", code), detail.get("message", message), detail.get("field")
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:500]}"
    status = response.status_code
    error: MoralscopeError
    if status == 404:
        error = NotFoundError(message)
    elif status in (401, 403):
        error = AuthError(message)
    elif status in (413, 429):
        error = LimitExceededError(message, field=field, http_status=status)
    elif status in (400, 422):
        error = InvalidInputError(message, field=field)
    elif status in RETRY_STATUS:
        error = UnavailableError(message)
    else:
        error = MoralscopeError(message, field=field)
    error.code = code
    error.http_status = status
    return error


class _Protocol:
    """What both clients share: configuration, request building and response decoding."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        retries: int,
        backoff: float,
    ) -> None:
        self.base_url = (base_url or os.environ.get("MORALSCOPE_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("MORALSCOPE_API_KEY")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _delay(self, attempt: int) -> float:
        return float(self.backoff * 2**attempt)

    @staticmethod
    def _should_retry(response: httpx.Response | None) -> bool:
        return response is None or response.status_code in RETRY_STATUS

    @staticmethod
    def _submission(spec: SpecSource, idempotency_key: str | None) -> tuple[dict[str, Any], dict[str, str]]:
        """The request body (the server validates it and names any bad field) and headers."""
        if isinstance(spec, JobSpec):
            body = spec.model_dump(mode="json", exclude_unset=True)
        elif isinstance(spec, dict):
            body = spec
        else:
            body = read_spec_data(spec)
        return body, {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}

    @staticmethod
    def _local_data(body: dict[str, Any], spec: SpecSource) -> dict[int, Path]:
        """The custom benchmarks' data files on this machine (relative to a spec file's folder), to upload."""
        base = Path(spec).parent if isinstance(spec, str | Path) else Path.cwd()
        return local_data_files(body, base)

    @staticmethod
    def _upload_request(path: str | Path, fmt: str | None) -> dict[str, Any]:
        path = Path(path)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read data file {path}: {exc.strerror or exc}") from exc
        params = {"filename": path.name, **({"format": fmt} if fmt else {})}
        return {"params": params, "content": content, "headers": {"Content-Type": "application/octet-stream"}}

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response

    @staticmethod
    def _finished(view: JobView) -> JobView:
        """A finished job's view; raises JobFailed for a failed one."""
        if view.state == JobState.FAILED:
            raise JobFailed(
                f"job {view.id} failed: {view.error or 'no reason given'}", job_id=view.id, error=view.error
            )
        return view

    @staticmethod
    def _results_path(job_id: str, table: Table) -> str:
        if table not in ("samples", "metrics"):
            raise InvalidInputError(f"table must be 'samples' or 'metrics', got {table!r}", field="table")
        return f"/v1/jobs/{job_id}/results/{table}"

    @staticmethod
    def _save(response: httpx.Response, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(response.content)
        return path


class _EventDecoder:
    """Server-sent events, line by line: ``data:`` lines up to a blank line make one JobEvent."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> JobEvent | None:
        if line.startswith("data:"):
            self._data.append(line[5:].strip())
        elif not line.strip() and self._data:
            event = JobEvent.model_validate_json("\n".join(self._data))
            self._data = []
            return event
        return None


class _ProgressBar:
    """A rich progress bar over a job's request counts (only when asked for)."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} prompts"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
            )

    def __enter__(self) -> _ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def update(self, view: JobView) -> None:
        if self._progress is None:
            return
        counts = view.request_counts
        rate = f"{view.tokens_per_second:,.0f} tok/s" if view.tokens_per_second else ""
        description = f"{view.id} {view.state.value}"
        if self._task is None:
            self._task = self._progress.add_task(description, total=counts.total or None, rate=rate)
        self._progress.update(
            self._task, description=description, completed=counts.completed, total=counts.total or None, rate=rate
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()


class Client(_Protocol):
    """A synchronous client of a moralscope server.

    >>> client = Client("http://127.0.0.1:8000", api_key="...")      # doctest: +SKIP
    >>> job = client.submit("examples/quickstart.yaml")              # doctest: +SKIP
    >>> client.wait(job.id)                                          # doctest: +SKIP
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, backoff)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport, headers=self._headers())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise UnavailableError(f"cannot reach moralscope at {self.base_url}: {exc}") from exc
            if response is not None and (not self._should_retry(response) or attempt == self.retries):
                return self._checked(response)
            time.sleep(self._delay(attempt))
        raise AssertionError("unreachable")

    def health(self) -> dict[str, Any]:
        """The server's liveness answer (``GET /healthz``); raises UnavailableError when unreachable."""
        return dict(self._request("GET", "/healthz").json())

    def upload(self, path: str | Path, *, format: str | None = None) -> UploadView:
        """Upload a data file for a custom benchmark; name the returned ``ref`` as its ``data``."""
        response = self._request("POST", "/v1/uploads", **self._upload_request(path, format))
        return UploadView.model_validate_json(response.content)

    def submit(self, spec: SpecSource, *, idempotency_key: str | None = None) -> JobView:
        """Submit a job (a JobSpec, a dict, or a YAML/JSON file path); local custom data files are uploaded."""
        body, headers = self._submission(spec, idempotency_key)
        if local := self._local_data(body, spec):
            body = with_uploaded_data(body, {index: self.upload(path) for index, path in local.items()})
        return JobView.model_validate_json(self._request("POST", "/v1/jobs", json=body, headers=headers).content)

    def get(self, job_id: str) -> JobView:
        return JobView.model_validate_json(self._request("GET", f"/v1/jobs/{job_id}").content)

    def list(self, state: JobState | str | None = None, *, limit: int = 50, offset: int = 0) -> JobList:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state is not None:
            params["state"] = str(JobState(state))
        return JobList.model_validate_json(self._request("GET", "/v1/jobs", params=params).content)

    def cancel(self, job_id: str) -> JobView:
        return JobView.model_validate_json(self._request("POST", f"/v1/jobs/{job_id}/cancel").content)

    def events(self, job_id: str) -> Iterator[JobEvent]:
        """The job's server-sent progress events, until it ends."""
        with self._http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                self._checked(response)
            decoder = _EventDecoder()
            for line in response.iter_lines():
                if (event := decoder.feed(line)) is not None:
                    yield event

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

        Progress comes from the events stream; if that is unavailable, the job is polled.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with _ProgressBar(progress) as bar:
            view = self.get(job_id)
            try:
                for event in self.events(job_id):
                    view = event.job
                    bar.update(view)
                    if on_update:
                        on_update(view)
                    if view.state.is_terminal or (deadline and time.monotonic() > deadline):
                        break
            except (httpx.HTTPError, UnavailableError, ValueError):
                pass  # fall back to polling below
            while not view.state.is_terminal:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {view.state.value} after {timeout} s")
                time.sleep(poll_interval)
                view = self.get(job_id)
                bar.update(view)
                if on_update:
                    on_update(view)
        return self._finished(view)

    def download(self, job_id: str, path: str | Path, *, table: Table = "samples") -> Path:
        """Save a result table's Parquet file to ``path``."""
        return self._save(self._request("GET", self._results_path(job_id, table)), path)

    def report(self, job_id: str, path: str | Path) -> Path:
        """Save a completed job's HTML report (interval plots and tables of its metrics) to ``path``."""
        return self._save(self._request("GET", f"/v1/jobs/{job_id}/results/report"), path)

    def results_arrow(self, job_id: str, *, table: Table = "samples") -> pa.Table:
        response = self._request("GET", self._results_path(job_id, table))
        return pq.read_table(pa.BufferReader(response.content))

    def results(self, job_id: str, table: Table = "samples") -> pl.DataFrame:
        """A result table as a polars DataFrame."""
        frame = pl.from_arrow(self.results_arrow(job_id, table=table))
        assert isinstance(frame, pl.DataFrame)
        return frame


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

    async def upload(self, path: str | Path, *, format: str | None = None) -> UploadView:
        response = await self._request("POST", "/v1/uploads", **self._upload_request(path, format))
        return UploadView.model_validate_json(response.content)

    async def submit(self, spec: SpecSource, *, idempotency_key: str | None = None) -> JobView:
        body, headers = self._submission(spec, idempotency_key)
        if local := self._local_data(body, spec):
            body = with_uploaded_data(body, {index: await self.upload(path) for index, path in local.items()})
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
