"""What the job store returns: plain, frozen records of its rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.jobs import JobState
from schemas.spec import JobSpec


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of ``jobs``."""

    id: str
    owner: str
    idempotency_key: str | None
    spec: JobSpec
    spec_sha256: str
    state: JobState
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    run_started_at: float | None
    error: str | None
    location: str
    cancel_requested: bool
    lease_owner: str | None
    lease_expires: float | None
    provenance: dict[str, Any] | None
    crash_resumes: int
    """Times the job was taken over from a runner that died holding it (or lost its lease)."""
    lease_epoch: int = 0
    """How often the job was claimed; a write carrying an older epoch is refused (fencing)."""
    crash_streak: int = 0
    """Runner deaths since the job last committed a shard (a crash loop stops the job)."""
    failed_cells: list[dict[str, Any]] | None = None
    """Cells set aside at finalizing for their error rows (schemas.jobs.FailedCell fields)."""


@dataclass(frozen=True, slots=True, order=True)
class ShardKey:
    """A shard: ``shard_size`` consecutive rows of one (model, benchmark, condition) in one phase."""

    model: int
    """The model's position in the job's spec."""
    benchmark: str
    condition: str
    phase: str
    """``reason`` (CoT reasoning is generated) or ``score`` (answers are scored)."""
    shard: int


@dataclass(frozen=True, slots=True)
class ShardRecord:
    key: ShardKey
    requests: int
    state: str
    """``pending``, ``done`` or ``failed``."""
    path: str | None
    tokens: int
    finished_at: float | None
    computed_tokens: int = 0
    """Of ``tokens``, those the engine computed (the rest came from its prefix cache)."""
    errors: int = 0
    """Error rows in the shard."""


@dataclass(frozen=True, slots=True)
class ModelRecord:
    position: int
    model: str
    phase: str = "pending"
    resolved_path: str | None = None
    revision: str | None = None
    fingerprint: str | None = None
    progress: dict[str, Any] | None = None
    """The model's live progress while it runs (service.runner.progress), kept after it stops."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    job_id: str
    created_at: float
    type: str
    message: str | None
