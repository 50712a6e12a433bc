"""A job's models side by side, as far as the cluster's free resources allow.

**Order.** Models are taken in the spec's order. Each asks Ray for its reservation (every CPU and GPU of
its actors as one placement group, :mod:`workers.placement`) and starts as soon as it is granted; the next
model asks only once the previous one holds its reservation. So a model that does not fit waits at the
head of the line until running models finish and free their resources, and is never overtaken by
smaller models behind it. Models with nothing left to run are skipped. Where one model takes every core
(a laptop), models run one at a time; two models of one CPU each on two cores run at the same time.
Reservations are atomic, so two API replicas sharing a cluster cannot split the GPUs between them.

**Failures.** A model that cannot be loaded fails the job, and the other models are stopped. A
reservation still not granted after the engine startup timeout while none of the job's models runs fails
it too: the cluster lacks the resources. Cancellation and shutdown stop every model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from schemas.errors import EngineFailure
from service.runner.context import JobCancelled, JobInterrupted, ModelToRun, RunContext
from service.runner.model_run import ModelRun
from service.runner.plan import JobPlan

logger = logging.getLogger("moralscope.runner")

POLL_S = 0.25
STARTUP_TIMEOUT_S = 1800.0
"""How long a model may wait for its reservation while none of the job's models runs."""


class _Aborted(Exception):
    """Another model of the job failed; this one stops."""


def run_models(
    ctx: RunContext, models: list[ModelToRun], plan: JobPlan, *, startup_timeout_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Run every model's unfinished shards (see the module docstring); returns when all are done."""
    from workers.cluster import ensure_ray
    from workers.placement import Reservation

    abort = threading.Event()
    errors: list[BaseException] = []

    def check_stop() -> None:
        ctx.check_stop()
        if abort.is_set():
            raise _Aborted

    shared = replace(ctx, check_stop=check_stop, stop_requested=lambda: ctx.stop_requested() or abort.is_set())
    threads: list[threading.Thread] = []

    def guarded(run: ModelRun) -> Callable[[], None]:
        def target() -> None:
            try:
                run.run()
            except BaseException as exc:  # recorded and re-raised by the sweep's thread
                errors.append(exc)
                if not isinstance(exc, _Aborted | JobCancelled | JobInterrupted):
                    abort.set()

        return target

    def reraise() -> None:
        real = [e for e in errors if not isinstance(e, _Aborted)]
        if real:
            abort.set()
            for thread in threads:
                thread.join()
            raise real[0]

    try:
        for model in models:
            run = ModelRun(shared, model, plan)
            if not run.pending():
                ctx.store.set_model_phase(ctx.job_id, model.position, "done")
                continue
            ensure_ray(ctx.settings.effective_ray_address, num_cpus=ctx.settings.ray_num_cpus)
            spec = model.spec
            reservation = Reservation(
                spec.num_actors, num_cpus=spec.cpus_per_actor, num_gpus=spec.gpus_per_actor, label=spec.key
            )
            ctx.store.set_model_phase(
                ctx.job_id,
                model.position,
                "waiting",
                message=f"{spec.key}: waiting for resources ({reservation.demand})",
            )
            alone = 0.0
            try:
                while not reservation.wait(POLL_S):
                    check_stop()
                    reraise()
                    if any(t.is_alive() for t in threads):
                        alone = 0.0
                        continue
                    alone += POLL_S
                    if alone > startup_timeout_s:
                        raise EngineFailure(
                            f"{spec.key}: the resources of its {spec.num_actors} engine actor(s) ({reservation.demand}) "
                            f"were not free after {startup_timeout_s:.0f}s while nothing else of this job ran; the "
                            "cluster lacks them (lower num_actors, cpus_per_actor or gpus_per_actor, or add nodes)"
                        )
            except BaseException:
                reservation.release()
                raise
            run.reservation = reservation
            thread = threading.Thread(target=guarded(run), name=f"model-{ctx.job_id}-{model.position}", daemon=True)
            threads.append(thread)
            thread.start()
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(POLL_S)
            reraise()
        reraise()
        ctx.check_stop()
    except _Aborted:
        reraise()
        raise
    except BaseException:
        abort.set()
        for thread in threads:
            thread.join()
        raise
