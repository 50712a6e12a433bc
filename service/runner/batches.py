"""The pieces of a model's work: a shard being filled, a batch on its way, a run of rows to batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.inference import GenerateResult, ScoreResult
from service.runner.plan import ConditionPlan, Shard
from service.runner.rows import Reasoning


class ShardFill:
    """A shard being filled: one value per row (a reasoning or a sample row), and its token counts."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.values: list[Any] = [None] * len(shard.rows)
        self.remaining = len(shard.rows)
        self.tokens = 0
        self.computed = 0
        self.errors = 0

    def put(self, offset: int, value: Any, result: ScoreResult | GenerateResult) -> None:
        if self.values[offset] is not None:
            raise RuntimeError(f"row {offset} of shard {self.shard.key} was computed twice")
        self.values[offset] = value
        self.remaining -= 1
        self.tokens += result.tokens_requested
        self.computed += result.tokens_computed
        self.errors += result.error is not None


@dataclass
class WorkBatch:
    """One batch for the pool, and what is needed to turn its results into rows."""

    kind: str
    fill: ShardFill
    offsets: list[int]
    """Rows of the shard, in request order."""
    requests: list[Any]
    affinity: tuple[str, int]
    priority: int
    prompts: list[str] = field(default_factory=list)
    """Score batches: each row's prompt text."""
    reasonings: list[Reasoning | None] = field(default_factory=list)
    """Score batches: each row's reasoning (CoT), else None."""
    seeds: list[int] = field(default_factory=list)
    """Reason batches: each row's sampling seed."""

    def split(self, size: int) -> list[WorkBatch]:
        """This batch cut into batches of at most ``size`` requests (same shard, key and priority)."""
        if len(self.requests) <= size:
            return [self]
        parts = []
        for start in range(0, len(self.requests), size):
            window = slice(start, start + size)
            parts.append(
                WorkBatch(
                    self.kind,
                    self.fill,
                    self.offsets[window],
                    self.requests[window],
                    self.affinity,
                    self.priority,
                    self.prompts[window],
                    self.reasonings[window],
                    self.seeds[window],
                )
            )
        return parts


@dataclass(frozen=True)
class Run:
    """Consecutive rows of one shard within one item block."""

    plan: ConditionPlan
    shard: int
    start: int
    stop: int
    block: int
