"""Public views of jobs, as the REST API returns them and the SDK reads them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.spec import JobSpec


class JobState(StrEnum):
    """A job's life: queued → validating → in_progress → finalizing → completed (or failed / cancelled)."""

    QUEUED = "queued"
    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


ModelPhaseName = Literal["pending", "reason", "score", "done", "failed", "cancelled"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RequestCounts(_View):
    """Prompts (score requests and reasoning requests) of a job."""

    total: int = Field(0, description="Requests the job will make.")
    completed: int = Field(0, description="Requests finished (their shard is written).")
    failed: int = Field(0, description="Requests in shards that failed.")


class ModelProgress(_View):
    """Where one model of a job is."""

    model: str = Field(description="The model's key (alias or name).")
    phase: ModelPhaseName = Field("pending", description="pending → reason (CoT) → score → done.")
    shards_total: int = 0
    shards_done: int = 0
    resolved_path: str | None = Field(None, description="Where the model's weights were found.")
    revision: str | None = None


class ResultLocations(_View):
    """Where a job's results are (filled once they exist)."""

    location: str | None = Field(None, description="The job's result directory or URI.")
    samples: str | None = Field(None, description="URI of samples.parquet.")
    metrics: str | None = Field(None, description="URI of metrics.parquet.")
    spec: str | None = Field(None, description="URI of spec.json (the spec with resolved versions).")
    report: str | None = Field(None, description="URI of report.html (figures and tables of the metrics).")


class JobView(_View):
    """A job as the API shows it."""

    id: str
    name: str | None = None
    state: JobState
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    models: list[ModelProgress] = Field(default_factory=list)
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    tokens_processed: int = Field(0, description="Prompt, candidate and generated tokens so far.")
    tokens_per_second: float | None = Field(None, description="Recent throughput.")
    eta_seconds: float | None = Field(None, description="Estimated seconds to completion.")
    error: str | None = Field(None, description="Why the job failed.")
    results: ResultLocations = Field(default_factory=ResultLocations)
    spec: JobSpec | None = Field(None, description="The submitted spec.")


class JobList(_View):
    """A page of jobs, newest first."""

    data: list[JobView]
    count: int = Field(description="Jobs matching the filter, over all pages.")


class JobEvent(_View):
    """One server-sent progress event (`GET /v1/jobs/{id}/events`)."""

    type: Literal["state", "progress", "log", "end"]
    job: JobView
    message: str | None = None


class ErrorDetail(_View):
    code: str = Field(description="A stable machine-readable code, e.g. `not_found`, `invalid_spec`.")
    message: str = Field(description="What went wrong and how to fix it.")
    field: str | None = Field(None, description="The offending field's path (dotted), when one is at fault.")


class ErrorBody(_View):
    """Every API error: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorDetail

    @classmethod
    def of(cls, code: str, message: str, field: str | None = None) -> ErrorBody:
        return cls(error=ErrorDetail(code=code, message=message, field=field))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()
