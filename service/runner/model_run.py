"""One model of a job: load it on its actors, stream its batches through one pool, commit its shards.

The pool (:class:`workers.pool.EnginePool`) is created once per model, in the resources reserved for it
(:mod:`service.runner.sweep`), and used for all its benchmarks and conditions. The loop keeps about one
batch per actor waiting in the pool beyond what the actors hold (so an actor that finishes always finds
work, and late-arriving CoT answers do not queue behind much), takes finished batches as they come
(no barrier); with several actors, batches shrink as the model's work runs out (at most its remaining
requests ÷ twice its actors, reasoning counted apart: guided self-scheduling, so that one big batch does not
run alone at the end), and it lets :class:`service.runner.work.ModelWork` commit every shard as soon as its rows
are in. Phases: ``loading`` → ``reason`` (while reasoning is left; answers and other scoring run
alongside) → ``score`` → ``done``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from schemas.errors import EngineFailure
from schemas.inference import EngineConfig
from service.runner.context import ModelToRun, RunContext
from service.runner.plan import REASON, SCORE, JobPlan
from service.runner.progress import ProgressTracker
from service.runner.work import ModelWork

logger = logging.getLogger("moralscope.runner")

POLL_S = 0.25


def batch_limits(remaining: dict[str, int], actors: int) -> dict[str, int] | None:
    """The most requests the next generate and score batch may hold, given the model's ``remaining`` requests
    by phase (None: whole batches).

    Guided self-scheduling: with several actors, batches shrink as the work runs out, so the actors finish
    together (reasoning by its own count: one reasoning request costs many scoring ones). One actor has no
    one to finish with, and a smaller batch only costs it more (a generation batch decodes as many steps
    however few its rows), so its batches stay whole.
    """
    if actors < 2:
        return None
    share = 2 * actors
    return {
        "generate": max(1, math.ceil(remaining[REASON] / share)),
        "score": max(1, math.ceil((remaining[REASON] + remaining[SCORE]) / share)),
    }


class ModelRun:
    """Runs the unfinished shards of one model (raising JobCancelled / JobInterrupted when asked to stop)."""

    def __init__(self, ctx: RunContext, model: ModelToRun, plan: JobPlan, reservation: Any = None) -> None:
        self.ctx = ctx
        self.model = model
        self.plan = plan
        self.reservation = reservation

    def pending(self) -> bool:
        """Whether the model has shards left to run."""
        done = {s.key for s in self.ctx.store.shards(self.ctx.job_id) if s.state == "done"}
        shards = (s for phase in (REASON, SCORE) for s in self.plan.shards(self.model.position, phase))
        return any(s.key not in done for s in shards)

    def run(self) -> None:
        ctx, key = self.ctx, self.model.spec.key
        done = {s.key for s in ctx.store.shards(ctx.job_id) if s.state == "done"}
        self._phase(
            "loading",
            f"{key}: loading the model on {self.model.spec.num_actors} {self.model.spec.engine} engine actor(s)",
        )
        pool = self._open_pool()
        tracker: ProgressTracker | None = None
        try:
            work = ModelWork(ctx, self.model, self.plan, done, batch_size=pool.batch_size)
            tracker = ProgressTracker(ctx, self.model, work, pool)
            phase = ""
            while not work.finished:
                ctx.check_stop()
                current = "reason" if work.reasoning_left else "score"
                if current != phase:
                    phase = current
                    self._phase(
                        phase, f"{key}: {'generating reasoning and scoring' if phase == 'reason' else 'scoring'}"
                    )
                while pool.backlog < pool.num_actors * pool.batch_size:
                    batch = work.next_batch(most=batch_limits(work.remaining, pool.num_actors))
                    if batch is None:
                        break
                    tracker.batch_sent()
                    pool.submit(batch.kind, batch.requests, affinity=batch.affinity, priority=batch.priority, tag=batch)
                for completion in pool.poll(POLL_S):
                    work.complete(completion.tag, completion.results)
                tracker.update()
        except EngineFailure as exc:
            ctx.check_stop()  # a pool stopped by our cancelled() callback is not an engine failure
            exc.message = f"{key}: {exc.message}"
            raise
        finally:
            try:
                if tracker is not None:
                    tracker.update(force=True)
            except Exception:  # e.g. the lease was lost: the run is ending anyway, the pool must close
                logger.debug("the last progress of %s was not written", key, exc_info=True)
            try:
                pool.close()
            except Exception:  # a failed close must not hide why the run ended
                logger.warning("closing the engine pool of %s failed", key, exc_info=True)
        self._phase("done", f"{key}: done")

    def _phase(self, phase: str, message: str) -> None:
        self.ctx.store.set_model_phase(self.ctx.job_id, self.model.position, phase, message=message)

    def _open_pool(self) -> Any:
        from workers.deadlines import DeadlinePolicy
        from workers.pool import EnginePool, PoolCancelled

        settings, spec = self.ctx.settings, self.model.spec
        config = EngineConfig(
            model_path=self.model.resolved.path,
            engine=spec.engine,
            dtype=spec.dtype,
            prompt_format=self.model.renderer.prompt_format,
            num_threads=max(1, int(spec.cpus_per_actor)),
            options=spec.engine_options,
        )
        try:
            return EnginePool(
                config,
                engine_factory=settings.load_engine_factory(),
                num_actors=spec.num_actors,
                num_gpus_per_actor=spec.gpus_per_actor,
                num_cpus_per_actor=spec.cpus_per_actor,
                reservation=self.reservation,
                max_retries=settings.engine_max_retries,
                deadlines=DeadlinePolicy(settings.batch_deadline_floor_s, settings.batch_deadline_factor),
                cancelled=self.ctx.stop_requested,
            )
        except PoolCancelled:
            self.ctx.check_stop()
            raise
        except EngineFailure as exc:
            self.ctx.check_stop()
            exc.message = f"{spec.key}: {exc.message}"
            raise
