"""The synchronous :class:`Client`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from moralscope.client.progress import _ProgressBar
from moralscope.client.protocol import SpecSource, Table, _EventDecoder, _Protocol
from schemas.errors import UnavailableError
from schemas.jobs import JobEvent, JobList, JobState, JobView


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

    def submit(self, spec: SpecSource, *, idempotency_key: str | None = None) -> JobView:
        """Submit a job (a JobSpec, a dict, or a YAML/JSON file path)."""
        body, headers = self._submission(spec, idempotency_key)
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
