"""A pool of engine actors for one model: streaming dispatch with affinity, deadlines and retries.

One pool per model is created once (its resources reserved at once as a placement group,
:mod:`workers.placement`; every actor loads the model once) and reused for every benchmark and
condition of that model. It is driven from one thread:

- :meth:`EnginePool.submit` queues a batch (a list of score or generate requests) with a priority, an
  affinity key and a tag, and returns at once; :meth:`EnginePool.poll` sends queued batches to actors
  with room, waits up to a timeout, and returns the submissions that finished (:class:`Completion`,
  results in request order). Each actor has at most ``max_in_flight_per_actor`` batches sent (one
  running, the next queued behind it, so an actor never waits for the driver); which batch goes where
  is :mod:`workers.routing` (priorities, prefix affinity, idle actors steal);
- :meth:`EnginePool.score` / :meth:`EnginePool.generate` are the simple blocking form (cut into batches
  of ``batch_size``, results in request order), for the CLI, benchmarks and tests.

Failures (STYLE 10): a request the engine cannot serve is an error result (the actor bisects batches
the engine raises on, :mod:`workers.actor`). An actor that dies or whose running batch misses its
deadline (:mod:`workers.deadlines`) is replaced (:mod:`workers.slots`) and its batch re-sent, then cut
in halves until the request that keeps losing actors is alone and becomes an error result
(:meth:`workers.routing.Piece.after_failure`); batches queued behind it are re-sent without penalty. A
model that cannot be loaded, resources that never become free, or an engine that breaks the batch
contract raise :class:`~schemas.errors.EngineFailure`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import ray
from ray.exceptions import ObjectLostError, RayActorError, RayError

from schemas.errors import EngineFailure
from schemas.inference import EngineConfig, GenerateRequest, GenerateResult, ScoreRequest, ScoreResult
from workers.actor import BatchOutcome, EngineFactory, EngineInfo
from workers.blocking import run_blocking
from workers.cluster import ensure_ray
from workers.deadlines import DeadlinePolicy
from workers.placement import Reservation
from workers.progress import Completion, Kind, PoolCancelled, PoolCounters, PoolProgress
from workers.routing import PendingQueue, Piece, Submission
from workers.slots import ActorSlot, ActorSlots, SentBatch, reason

__all__ = ["DEFAULT_BATCH_SIZE", "Completion", "EnginePool", "PoolCancelled", "PoolProgress"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = {"hf": 32, "vllm": 256}
"""Requests per batch by engine: vLLM schedules a whole batch at once (and shares its prefixes), so it
wants many; the hf engine cuts its own forward passes by a token budget, and small batches retry cheaply."""
POLL_S = 0.25
"""How long a blocking call waits between looks at its cancellation flag."""
_LOST = (RayActorError, ObjectLostError)

ACTOR_ENV_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Environment of every engine actor (``env_vars`` overrides it). OpenMP's default busy-waiting makes a
CPU engine up to ~18× slower as soon as anything else (the driver, another actor) wants a core."""


class EnginePool:
    """Engine actors for one model with streaming, affine, deadline-guarded dispatch (see the module docstring)."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        num_actors: int = 1,
        num_gpus_per_actor: float = 0,
        num_cpus_per_actor: float = 1,
        engine_factory: EngineFactory | None = None,
        batch_size: int | None = None,
        max_in_flight_per_actor: int = 2,
        max_retries: int = 2,
        deadlines: DeadlinePolicy | None = None,
        reservation: Reservation | None = None,
        progress: Callable[[PoolProgress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        startup_timeout_s: float = 1800.0,
        env_vars: dict[str, str] | None = None,
    ) -> None:
        for name, value, low in (
            ("num_actors", num_actors, 1),
            ("batch_size", batch_size if batch_size is not None else 1, 1),
            ("max_in_flight_per_actor", max_in_flight_per_actor, 1),
            ("max_retries", max_retries, 0),
        ):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if num_gpus_per_actor < 0 or num_cpus_per_actor < 0:
            raise ValueError(
                f"num_gpus_per_actor and num_cpus_per_actor must be >= 0, got {num_gpus_per_actor}, {num_cpus_per_actor}"
            )
        ensure_ray()
        self.config = config
        self.batch_size = batch_size if batch_size is not None else DEFAULT_BATCH_SIZE.get(config.engine, 32)
        self.max_in_flight_per_actor = max_in_flight_per_actor
        self.max_retries = max_retries
        self.deadlines = deadlines or DeadlinePolicy()
        self.progress = progress
        self.cancelled = cancelled
        self.startup_timeout_s = startup_timeout_s
        self.counters = PoolCounters()
        self._closed = False
        self._tickets = itertools.count()
        self._pending = PendingQueue()
        self._refs: dict[Any, tuple[ActorSlot, SentBatch]] = {}
        self._finished: list[Completion] = []
        self.reservation = reservation or Reservation(
            num_actors, num_cpus=num_cpus_per_actor, num_gpus=num_gpus_per_actor
        )
        self._slots = ActorSlots(
            config,
            self.reservation,
            engine_factory=engine_factory,
            env_vars={**ACTOR_ENV_DEFAULTS, **(env_vars or {})},
            counters=self.counters,
            startup_timeout_s=startup_timeout_s,
            max_failed_starts=max_retries,
        )
        try:
            self._slots.start(cancelled)
        except BaseException:
            self.close()
            raise

    # -- public API ----------------------------------------------------------------------------------
    @property
    def num_actors(self) -> int:
        return self.reservation.bundles

    @property
    def actors(self) -> tuple[Any, ...]:
        """Handles of the current actors (for monitoring and tests; they change when one is replaced)."""
        return tuple(slot.handle for slot in self._slots)

    @property
    def backlog(self) -> int:
        """Requests submitted and not yet sent to an actor."""
        return self._pending.requests()

    @property
    def outstanding(self) -> int:
        """Batches submitted or in flight whose results have not been returned by :meth:`poll` yet."""
        return len(self._pending) + len(self._refs) + len(self._finished)

    def info(self, timeout_s: float = 60.0) -> list[EngineInfo]:
        """What each actor hosts and where it runs."""
        self._check_open()
        return list(ray.get([slot.handle.info.remote() for slot in self._slots], timeout=timeout_s))

    def submit(
        self,
        kind: Kind,
        requests: Sequence[ScoreRequest] | Sequence[GenerateRequest],
        *,
        affinity: Hashable | None = None,
        priority: int = 0,
        tag: Any = None,
    ) -> int:
        """Queue one batch; returns its ticket. Its :class:`Completion` comes back from :meth:`poll`.

        Batches with the same ``affinity`` key go to the same actor while that actor has room (use it for
        requests that share prompt prefixes); lower ``priority`` values are sent first.
        """
        self._check_open()
        if kind not in ("score", "generate"):
            raise ValueError(f"kind must be 'score' or 'generate', got {kind!r}")
        submission = Submission(next(self._tickets), kind, list(requests), priority, affinity, tag)
        if submission.requests:
            self._pending.push(Piece(submission, 0, len(submission.requests)))
            self._dispatch(steal=False)  # more may follow at once: stealing waits for the next poll
        else:
            self._finished.append(submission.completion())
        return submission.ticket

    def poll(self, timeout_s: float = POLL_S) -> list[Completion]:
        """Send what fits, wait up to ``timeout_s`` for results, and return the finished submissions."""
        self._check_open()
        self._dispatch()
        waiting = list(self._refs) + self._slots.starting_probes()
        if waiting and not self._finished:
            first, _ = ray.wait(waiting, num_returns=1, timeout=timeout_s)
            if first:
                waiting_refs = [ref for ref in waiting if ref in self._refs]
                ready, _ = (
                    ray.wait(waiting_refs, num_returns=len(waiting_refs), timeout=0) if waiting_refs else ([], [])
                )
                self._collect(ready)
        elif not waiting and not self._finished and len(self._pending):
            time.sleep(min(timeout_s, POLL_S))  # every actor is starting or gone: nothing to wait on yet
        self._slots.check_starting()
        self._check_deadlines()
        # no dispatch here: the caller first hands in the work these results unlock (a CoT answer after its
        # reasoning), so that it can take the free slots before older, lower-priority batches
        finished, self._finished = self._finished, []
        return finished

    def cancel(self) -> None:
        """Forget every submission: queued batches are dropped, sent ones cancelled (a running one finishes
        and its result is discarded)."""
        self._pending.drop()
        for ref in list(self._refs):
            ray.cancel(ref)
        self._refs.clear()
        self._finished.clear()
        for slot in self._slots:
            slot.in_flight.clear()

    def score(
        self,
        requests: Sequence[ScoreRequest],
        *,
        progress: Callable[[PoolProgress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[ScoreResult]:
        """Score every request (blocking; see :meth:`workers.engine.Engine.score`); results in request order."""
        return run_blocking(self, "score", requests, progress or self.progress, cancelled or self.cancelled)

    def generate(
        self,
        requests: Sequence[GenerateRequest],
        *,
        progress: Callable[[PoolProgress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[GenerateResult]:
        """Sample for every request (blocking; see :meth:`workers.engine.Engine.generate`); results in order."""
        return run_blocking(self, "generate", requests, progress or self.progress, cancelled or self.cancelled)

    def close(self, timeout_s: float = 30.0) -> None:
        """Close every engine, end the actors and release the reservation (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.cancel()
            self._slots.close(timeout_s)
        finally:
            self.reservation.release()

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dispatch ------------------------------------------------------------------------------------
    def _dispatch(self, *, steal: bool = True) -> None:
        """Fill every ready actor's queue, first positions first; only an idle actor steals (``steal``)."""
        for depth in range(self.max_in_flight_per_actor):
            for slot in self._slots:
                if slot.starting is not None or len(slot.in_flight) != depth:
                    continue
                piece = self._pending.take(slot.index, steal=steal and depth == 0)
                if piece is None:
                    continue
                ref = slot.handle.run_batch.remote(piece.kind, piece.requests)
                sent = SentBatch(piece, ref, time.monotonic())
                slot.in_flight.append(sent)
                self._refs[ref] = (slot, sent)

    def _collect(self, ready: list[Any]) -> None:
        lost: list[tuple[ActorSlot, BaseException]] = []
        for ref in ready:
            entry = self._refs.pop(ref, None)
            if entry is None:
                continue  # a batch of a replaced actor or a cancelled submission
            slot, sent = entry
            try:
                outcome: BatchOutcome = ray.get(ref)
            except _LOST as exc:
                lost.append((slot, exc))
                continue
            except RayError as exc:  # the actor's batch method raised: a broken engine, not a bad request
                raise EngineFailure(
                    f"the {self.config.engine} engine failed on a batch of {sent.piece.size} {sent.piece.kind} "
                    f"requests: {reason(exc)}"
                ) from exc
            slot.in_flight.remove(sent)
            slot.free_since = time.monotonic()
            self.counters.batches_done += 1
            self.counters.busy_seconds += outcome.seconds
            self.deadlines.observe(sent.piece.kind, sent.piece.size, outcome.seconds)
            self._deliver(sent.piece, outcome.results, outcome.seconds)
        for slot, error in lost:
            if slot.in_flight:  # not yet replaced because of another of its batches
                log.warning("engine actor %d lost (%s); replacing it", slot.index, reason(error))
                self._lose_actor(slot, f"its engine actor was lost ({reason(error)})")

    def _check_deadlines(self) -> None:
        for slot, limit in self._slots.overdue(self.deadlines):
            self.counters.timeouts += 1
            self._lose_actor(slot, f"it ran past its deadline of {limit:.1f}s")

    def _lose_actor(self, slot: ActorSlot, reason: str) -> None:
        """Replace the slot's actor: charge the batch it was running, re-send the ones queued behind it."""
        sent = list(slot.in_flight)
        slot.in_flight.clear()
        for entry in sent:
            self._refs.pop(entry.ref, None)
        self._slots.replace(slot)
        for entry in sent[1:]:
            self._pending.push(entry.piece)
        if sent:
            self._charge(sent[0].piece, reason)

    def _charge(self, piece: Piece, reason: str) -> None:
        again = piece.after_failure(self.max_retries)
        if again:
            self.counters.retries += len(again) == 1
            self.counters.splits += len(again) == 2
            for part in again:
                self._pending.push(part)
        else:
            message = f"the request was given up after {piece.failures} tries: {reason}"
            failed = ScoreResult.failed(message) if piece.kind == "score" else GenerateResult.failed(message)
            self._deliver(piece, [failed], 0.0)

    def _deliver(self, piece: Piece, results: Sequence[Any], seconds: float) -> None:
        submission = piece.submission
        if len(results) != piece.size:
            raise EngineFailure(f"the engine returned {len(results)} results for a batch of {piece.size} requests")
        submission.results[piece.start : piece.start + piece.size] = list(results)
        submission.remaining -= piece.size
        submission.engine_seconds += seconds
        counters = self.counters
        counters.requests_done += piece.size
        for result in results:
            counters.tokens_requested += result.tokens_requested
            counters.tokens_computed += result.tokens_computed
            counters.errors += result.error is not None
        if submission.remaining == 0:
            self._finished.append(submission.completion())

    def _check_open(self) -> None:
        if self._closed:
            raise EngineFailure("the engine pool is closed; create a new EnginePool")
