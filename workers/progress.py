"""What the pool reports: finished submissions, cumulative counters, and per-call progress.

Token counts follow :mod:`schemas.inference`: *requested* tokens are every prompt, candidate and
generated token of the served requests; *computed* tokens are those the engine really ran through the
model (a prefix cache serves the rest). ``1 − computed / requested`` is the prefix-cache hit rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["score", "generate"]


@dataclass(frozen=True, slots=True)
class Completion:
    """A submission whose every request has a result (some may be error results)."""

    ticket: int
    kind: Kind
    tag: Any
    """What the submitter attached to the submission (returned untouched)."""
    results: list[Any]
    """ScoreResult or GenerateResult per request, in request order."""
    tokens_requested: int
    tokens_computed: int
    errors: int
    """Results that carry an ``error``."""
    engine_seconds: float
    """Engine time spent on it (summed over the pieces it was cut into)."""


@dataclass
class PoolCounters:
    """Cumulative counters of a pool since it was created (monotonic)."""

    requests_done: int = 0
    batches_done: int = 0
    tokens_requested: int = 0
    tokens_computed: int = 0
    errors: int = 0
    """Error results (engine-reported or isolated by bisection or repeated actor loss)."""
    retries: int = 0
    """Pieces re-sent because their actor died or missed a deadline."""
    splits: int = 0
    """Pieces cut in halves to isolate a request that keeps losing its actor."""
    timeouts: int = 0
    """Batches that missed their deadline (their actor was replaced)."""
    actors_replaced: int = 0
    busy_seconds: float = 0.0
    """Engine time over all actors."""


@dataclass(frozen=True, slots=True)
class PoolProgress:
    """Cumulative progress of one blocking :meth:`EnginePool.score` / :meth:`EnginePool.generate` call."""

    kind: Kind
    prompts_done: int
    prompts_total: int
    tokens_processed: int
    """Requested tokens (prompt plus scored or generated) of the finished requests."""
    tokens_computed: int
    """Of those, the tokens the engine computed (the rest came from its prefix cache)."""
    tokens_per_s: float
    elapsed_s: float
    batches_done: int
    batches_total: int
    retries: int
    """Batches re-sent to a fresh actor after an actor died or hung."""
    errors: int = 0
    """Requests that ended as error results."""

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of requested tokens served from a prefix cache (None before any token)."""
        if not self.tokens_processed:
            return None
        return 1.0 - self.tokens_computed / self.tokens_processed


class PoolCancelled(Exception):
    """The call's ``cancelled`` flag was raised; nothing further was dispatched."""

    def __init__(self, prompts_done: int, prompts_total: int) -> None:
        super().__init__(f"cancelled after {prompts_done} of {prompts_total} prompts")
        self.prompts_done = prompts_done
        self.prompts_total = prompts_total
