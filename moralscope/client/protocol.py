"""What both clients share: configuration, request building, response decoding, event decoding."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Literal

import httpx

from moralscope.client.errors import RETRY_STATUS, _error_from_response
from moralscope.specfile import read_spec_data
from schemas.errors import InvalidInputError, JobFailed
from schemas.jobs import JobEvent, JobState, JobView
from schemas.spec import JobSpec

Table = Literal["samples", "metrics"]
SpecSource = JobSpec | dict[str, Any] | str | Path
DEFAULT_URL = "http://127.0.0.1:8000"


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
