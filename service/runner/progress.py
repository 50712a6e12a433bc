"""A running model's live progress, written to the store about once a second for the job view.

Shards record what is durable; this records what is streaming: requests whose results are in (also
those of shards not yet written), the rates of the current run (rows, requested and computed tokens per
second, measured since the model's first batch was sent, so loading is not counted as slow work), and
an ETA from the engine time per request that the actors report, by kind (reasoning is far slower than
scoring): remaining requests × seconds per request ÷ actors.
"""

from __future__ import annotations

import time
from typing import Any

from service.runner.context import ModelToRun, RunContext
from service.runner.plan import REASON, SCORE
from service.runner.work import ModelWork

WRITE_EVERY_S = 1.0


class ProgressTracker:
    """Writes one model's streaming progress (see the module docstring)."""

    def __init__(self, ctx: RunContext, model: ModelToRun, work: ModelWork, pool: Any) -> None:
        self.ctx = ctx
        self.model = model
        self.work = work
        self.pool = pool
        self.started_at = time.time()
        self.first_batch_at: float | None = None
        self.done_at_start = work.requests_done
        self._written = 0.0

    def batch_sent(self) -> None:
        if self.first_batch_at is None:
            self.first_batch_at = time.time()

    def update(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < WRITE_EVERY_S:
            return
        self._written = now
        self.ctx.store.set_model_progress(self.ctx.job_id, self.model.position, self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        counters = self.pool.counters
        now = time.time()
        running = now - self.first_batch_at if self.first_batch_at is not None else 0.0
        rows = self.work.requests_done - self.done_at_start

        def rate(value: float) -> float | None:
            return value / running if running > 0 and value > 0 else None

        eta: float | None = 0.0
        for phase, kind in ((REASON, "generate"), (SCORE, "score")):
            left = self.work.remaining[phase]
            if not left:
                continue
            per_request = self.pool.deadlines.seconds_per_request(kind)
            if per_request is None or eta is None:
                eta = None
            else:
                eta += left * per_request / max(1, self.pool.num_actors)
        fence = getattr(self.ctx.store, "fence", None)
        return {
            "epoch": fence.epoch if fence is not None else None,
            "updated_at": now,
            "started_at": self.started_at,
            "requests_total": self.work.requests_total,
            "requests_done": self.work.requests_done,
            "rows_per_second": rate(rows),
            "tokens_per_second": rate(counters.tokens_requested),
            "computed_tokens_per_second": rate(counters.tokens_computed),
            "eta_seconds": eta,
            "actors": self.pool.num_actors,
            "retries": counters.retries + counters.splits,
            "timeouts": counters.timeouts,
            "actors_replaced": counters.actors_replaced,
            "busy_seconds": counters.busy_seconds,
        }
