"""What every part of a running job shares: its store, files, spec, stop checks; and how it stops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.inference import ResolvedModel
from schemas.spec import JobSpec, ModelSpec
from service.results import JobFiles
from service.settings import Settings
from service.store import JobStore


class JobInterrupted(Exception):
    """The runner is shutting down; the job keeps its state and resumes on the next start."""


class JobCancelled(Exception):
    """The user cancelled the job."""


@dataclass
class ModelToRun:
    """A model of the job, resolved, with its prompt renderer."""

    position: int
    spec: ModelSpec
    resolved: ResolvedModel
    renderer: Any
    """A workers.rendering.PromptRenderer (typed loosely: workers is imported lazily)."""


@dataclass(frozen=True)
class RunContext:
    """One job's execution environment, handed to the per-model runs."""

    store: JobStore
    settings: Settings
    job_id: str
    spec: JobSpec
    files: JobFiles
    check_stop: Callable[[], None]
    """Raises JobInterrupted (shutdown) or JobCancelled (cancel requested)."""
    stop_requested: Callable[[], bool]
    on_commit: Callable[[], None]
    """Called after every shard commit (the CLI's progress display)."""
