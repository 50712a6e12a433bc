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


ModelPhaseName = Literal["pending", "waiting", "loading", "reason", "score", "done", "failed", "cancelled"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RequestCounts(_View):
    """Prompts (score requests and reasoning requests) of a job."""

    total: int = Field(0, description="Requests the job will make.")
    completed: int = Field(
        0,
        description=(
            "Requests whose results are in, including those of shards not written yet (after a restart, "
            "counting resumes from `committed`)."
        ),
    )
    committed: int = Field(0, description="Requests in written shards: a restart resumes after them.")
    failed: int = Field(0, description="Requests in shards that failed.")
    errors: int = Field(0, description="Requests (in written shards) that ended as error rows.")


class ModelProgress(_View):
    """Where one model of a job is, and how fast it goes."""

    model: str = Field(description="The model's key (alias or name).")
    phase: ModelPhaseName = Field(
        "pending",
        description=(
            "pending → waiting (for cluster resources) → loading → reason (CoT reasoning, with scoring alongside) "
            "→ score → done."
        ),
    )
    shards_total: int = 0
    shards_done: int = 0
    requests_total: int = Field(0, description="Reasoning and scoring requests of this model.")
    requests_done: int = Field(0, description="Of those, the ones whose results are in (written or not yet).")
    errors: int = Field(0, description="Error rows in this model's written shards.")
    tokens_requested: int = Field(0, description="Prompt, candidate and generated tokens of its written shards.")
    tokens_computed: int = Field(
        0, description="Of those, the tokens the engine computed (the rest came from its prefix cache)."
    )
    cache_hit_rate: float | None = Field(None, description="1 − tokens_computed / tokens_requested.")
    rows_per_second: float | None = Field(None, description="Requests per second of the current run (running only).")
    tokens_per_second: float | None = Field(None, description="Requested tokens per second of the current run.")
    computed_tokens_per_second: float | None = Field(None, description="Computed tokens per second of the current run.")
    eta_seconds: float | None = Field(None, description="Estimated seconds until this model is done.")
    actors: int | None = Field(None, description="Engine actors serving it (running only).")
    retries: int = Field(0, description="Batches re-sent after an actor died or hung, in the current run.")
    resolved_path: str | None = Field(None, description="Where the model's weights were found.")
    revision: str | None = None


class FailedRow(_View):
    """One error row of a failed cell."""

    item_id: str
    variant: str | None = None
    sample: int = 0
    error: str


class FailedCell(_View):
    """A model × benchmark × condition whose share of error rows exceeds the spec's ``max_error_rate``:
    it has no metrics; its rows (error rows included) are in samples.parquet."""

    model: str
    benchmark: str
    condition: str
    rows: int = Field(description="Rows of the cell.")
    errors: int = Field(description="Of those, error rows (the engine could not score them).")
    error_rate: float = Field(description="errors / rows.")
    cause: str = Field(description="The most common error, and how many rows failed otherwise.")
    examples: list[FailedRow] = Field(default_factory=list, description="A few of its error rows.")


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
    tokens_processed: int = Field(0, description="Prompt, candidate and generated tokens so far (written shards).")
    tokens_computed: int = Field(
        0, description="Of those, the tokens the engines computed (the rest came from their prefix caches)."
    )
    cache_hit_rate: float | None = Field(None, description="1 − tokens_computed / tokens_processed.")
    tokens_per_second: float | None = Field(None, description="Requested tokens per second of the running models.")
    eta_seconds: float | None = Field(None, description="Estimated seconds to completion.")
    error: str | None = Field(None, description="Why the job failed.")
    failed_cells: list[FailedCell] = Field(
        default_factory=list,
        description="Cells with too many error rows (no metrics); the job still completes with the others.",
    )
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
