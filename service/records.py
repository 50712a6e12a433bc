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


@dataclass(frozen=True, slots=True)
class ModelRecord:
    position: int
    model: str
    phase: str = "pending"
    resolved_path: str | None = None
    revision: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    job_id: str
    created_at: float
    type: str
    message: str | None
