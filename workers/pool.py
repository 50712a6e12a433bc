"""A pool of engine actors that fans batches out and collects them in order (STYLE 10).

One pool per model is created once (every actor loads the model once, at construction) and reused
for every benchmark and condition of that model. :meth:`EnginePool.score` and
:meth:`EnginePool.generate` are blocking and return results in request order:

- requests are cut into batches of ``batch_size`` (default by engine: :data:`DEFAULT_BATCH_SIZE`); each actor has at most ``max_in_flight_per_actor``
  batches queued or running (backpressure), the driver waits with ``ray.wait``;
- an actor that dies (``RayActorError``: ``ActorDiedError``, ``ActorUnavailableError``, a lost node)
  is replaced by a fresh actor and its batches are retried, at most ``max_retries`` times per batch,
  then the call fails with :class:`~schemas.errors.EngineFailure`;
- an exception raised by the engine itself (a deterministic failure, including a model that cannot be
  loaded) fails the call at once with :class:`~schemas.errors.EngineFailure` carrying its message;
- ``progress`` is called after every finished batch with cumulative, monotonic :class:`PoolProgress`;
- ``cancelled`` is checked between batches; when it returns true, queued batches are cancelled and
  the call raises :class:`PoolCancelled`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ray
from ray.exceptions import ObjectLostError, RayActorError, RayError

from schemas.errors import EngineFailure
from schemas.inference import EngineConfig, GenerateRequest, GenerateResult, ScoreRequest, ScoreResult
from workers.actor import EngineActor, EngineFactory, EngineInfo
from workers.cluster import ensure_ray

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = {"hf": 32, "vllm": 256}
"""Requests per batch by engine: vLLM schedules a whole batch at once (and shares its prefixes), so it
wants many; the hf engine cuts its own forward passes by a token budget, and small batches retry cheaply."""
_POLL_S = 0.25  # how often a waiting call looks at its cancellation flag
_RETRYABLE = (RayActorError, ObjectLostError)

ACTOR_ENV_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Environment of every engine actor (``env_vars`` overrides it). OpenMP's default busy-waiting makes a
CPU engine up to ~18× slower as soon as anything else (the driver, another actor) wants a core."""


@dataclass(frozen=True, slots=True)
class PoolProgress:
    """Cumulative progress of one :meth:`EnginePool.score` / :meth:`EnginePool.generate` call."""

    kind: Literal["score", "generate"]
    prompts_done: int
    prompts_total: int
    tokens_processed: int
    """Prompt plus scored or generated tokens of the finished requests."""
    tokens_per_s: float
    elapsed_s: float
    batches_done: int
    batches_total: int
    retries: int
    """Batches re-sent to a fresh actor after an actor died."""


class PoolCancelled(Exception):
    """The call's ``cancelled`` flag was raised; nothing further was dispatched."""

    def __init__(self, prompts_done: int, prompts_total: int) -> None:
        super().__init__(f"cancelled after {prompts_done} of {prompts_total} prompts")
        self.prompts_done = prompts_done
        self.prompts_total = prompts_total


class _Slot:
    """One actor position in the pool; ``generation`` changes when its actor is replaced."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.generation = 0
        self.in_flight = 0


@dataclass
class _Call:
    """The state of one score/generate call: batches, where each one is, and the running totals."""

    kind: Literal["score", "generate"]
    batches: list[list[Any]]
    total: int
    outputs: list[list[Any] | None] = field(init=False)
    attempts: list[int] = field(init=False)
    queue: deque[int] = field(init=False)
    in_flight: dict[Any, tuple[int, _Slot, int]] = field(default_factory=dict)
    """object ref -> (batch index, slot, the slot's generation when the batch was sent)"""
    done: int = 0
    tokens: int = 0
    batches_done: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.outputs = [None] * len(self.batches)
        self.attempts = [0] * len(self.batches)
        self.queue = deque(range(len(self.batches)))

    def progress(self) -> PoolProgress:
        elapsed = time.monotonic() - self.started
        return PoolProgress(
            kind=self.kind,
            prompts_done=self.done,
            prompts_total=self.total,
            tokens_processed=self.tokens,
            tokens_per_s=self.tokens / elapsed if elapsed > 0 else 0.0,
            elapsed_s=elapsed,
            batches_done=self.batches_done,
            batches_total=len(self.batches),
            retries=self.retries,
        )


class EnginePool:
    """``num_actors`` engine actors for one model, with ordered, retried, back-pressured dispatch."""

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
        self.progress = progress
        self.cancelled = cancelled
        options: dict[str, Any] = {"num_cpus": num_cpus_per_actor, "num_gpus": num_gpus_per_actor}
        if num_actors > 1:
            options["scheduling_strategy"] = "SPREAD"
        options["runtime_env"] = {"env_vars": {**ACTOR_ENV_DEFAULTS, **(env_vars or {})}}
        self._actor_options = options
        self._engine_factory = engine_factory
        self._closed = False
        self._slots = [_Slot(self._start_actor()) for _ in range(num_actors)]
        try:
            self._wait_ready(startup_timeout_s)
        except BaseException:
            self.close()
            raise

    # -- public API ----------------------------------------------------------------------------------
    @property
    def actors(self) -> tuple[Any, ...]:
        """Handles of the current actors (for monitoring and tests; they change when one is replaced)."""
        return tuple(slot.handle for slot in self._slots)

    def info(self, timeout_s: float = 60.0) -> list[EngineInfo]:
        """What each actor hosts and where it runs."""
        self._check_open()
        return list(ray.get([slot.handle.info.remote() for slot in self._slots], timeout=timeout_s))

    def score(
        self,
        requests: Sequence[ScoreRequest],
        *,
        progress: Callable[[PoolProgress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[ScoreResult]:
        """Score every request (see :meth:`workers.engine.Engine.score`); results in request order."""
        return self._run("score", requests, progress, cancelled)

    def generate(
        self,
        requests: Sequence[GenerateRequest],
        *,
        progress: Callable[[PoolProgress], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[GenerateResult]:
        """Sample for every request (see :meth:`workers.engine.Engine.generate`); results in request order."""
        return self._run("generate", requests, progress, cancelled)

    def close(self, timeout_s: float = 30.0) -> None:
        """Close every engine and end the actors (idempotent)."""
        if self._closed:
            return
        self._closed = True
        refs = [slot.handle.close.remote() for slot in self._slots]
        try:
            ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        finally:
            for slot in self._slots:
                _kill(slot.handle)

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- actors --------------------------------------------------------------------------------------
    def _start_actor(self) -> Any:
        return EngineActor.options(**self._actor_options).remote(self.config, self._engine_factory)

    def _wait_ready(self, timeout_s: float) -> None:
        refs = [slot.handle.info.remote() for slot in self._slots]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        for ref in ready:
            try:
                ray.get(ref)
            except RayError as exc:
                raise EngineFailure(
                    f"the {self.config.engine} engine for {self.config.model_path} could not be started: {_reason(exc)}"
                ) from exc
        if pending:
            available = ray.available_resources()  # type: ignore[no-untyped-call]
            raise EngineFailure(
                f"{len(pending)} of {len(refs)} engine actors for {self.config.model_path} were not ready after "
                f"{timeout_s:.0f}s; they may wait for resources the cluster lacks (each needs "
                f"num_cpus={self._actor_options['num_cpus']}, num_gpus={self._actor_options['num_gpus']}; "
                f"available: {available})"
            )

    def _replace(self, slot: _Slot) -> None:
        _kill(slot.handle)
        slot.handle = self._start_actor()
        slot.generation += 1
        slot.in_flight = 0

    # -- dispatch ------------------------------------------------------------------------------------
    def _run(
        self,
        kind: Literal["score", "generate"],
        requests: Sequence[Any],
        progress: Callable[[PoolProgress], None] | None,
        cancelled: Callable[[], bool] | None,
    ) -> list[Any]:
        self._check_open()
        size = self.batch_size
        call = _Call(kind, [list(requests[i : i + size]) for i in range(0, len(requests), size)], len(requests))
        progress = progress or self.progress
        cancelled = cancelled or self.cancelled
        try:
            while call.queue or call.in_flight:
                if cancelled is not None and cancelled():
                    raise PoolCancelled(call.done, call.total)
                self._dispatch(call)
                ready, _ = ray.wait(list(call.in_flight), num_returns=1, timeout=_POLL_S)
                for ref in ready:
                    if self._collect(call, ref) and progress is not None:
                        progress(call.progress())
        finally:
            # Queued batches of an abandoned call are cancelled; a running one finishes and is dropped.
            for ref in call.in_flight:
                ray.cancel(ref)
            for slot in self._slots:
                slot.in_flight = 0
        return [item for batch in call.outputs if batch is not None for item in batch]

    def _dispatch(self, call: _Call) -> None:
        while call.queue:
            slot = min(self._slots, key=lambda s: s.in_flight)
            if slot.in_flight >= self.max_in_flight_per_actor:
                return
            index = call.queue.popleft()
            ref = getattr(slot.handle, call.kind).remote(call.batches[index])
            call.in_flight[ref] = (index, slot, slot.generation)
            slot.in_flight += 1

    def _collect(self, call: _Call, ref: Any) -> bool:
        """Take one finished batch; True when it produced results, False when it was re-queued."""
        index, slot, generation = call.in_flight.pop(ref)
        if slot.generation == generation:
            slot.in_flight -= 1
        batch = call.batches[index]
        try:
            result = ray.get(ref)
        except _RETRYABLE as exc:
            if isinstance(exc, RayActorError) and exc.actor_init_failed:
                raise EngineFailure(
                    f"a replacement {self.config.engine} engine could not be started: {_reason(exc)}"
                ) from exc
            call.attempts[index] += 1
            if call.attempts[index] > self.max_retries:
                raise EngineFailure(
                    f"batch {index} of {len(call.batches)} ({call.kind}) was lost with {call.attempts[index]} engine "
                    f"actors in a row; giving up after max_retries={self.max_retries}. Last error: {_reason(exc)}"
                ) from exc
            log.warning("engine actor lost during batch %d (%s); retrying on a fresh actor", index, _reason(exc))
            if slot.generation == generation:  # not yet replaced because of another of its batches
                self._replace(slot)
            call.queue.appendleft(index)
            call.retries += 1
            return False
        except RayError as exc:  # RayTaskError: the engine raised; anything else Ray cannot recover
            first = index * self.batch_size
            raise EngineFailure(
                f"the {self.config.engine} engine failed on batch {index} of {len(call.batches)} ({call.kind}, "
                f"requests {first}..{first + len(batch) - 1}): {_reason(exc)}"
            ) from exc
        if len(result) != len(batch):
            raise EngineFailure(f"the engine returned {len(result)} results for a batch of {len(batch)} requests")
        call.outputs[index] = result
        call.done += len(result)
        call.tokens += sum(_tokens(r) for r in result)
        call.batches_done += 1
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise EngineFailure("the engine pool is closed; create a new EnginePool")


def _kill(handle: Any) -> None:
    try:
        ray.kill(handle, no_restart=True)
    except Exception as exc:  # an actor that is already gone need not be killed
        log.debug("killing engine actor failed: %s", exc)


def _tokens(result: ScoreResult | GenerateResult) -> int:
    if isinstance(result, ScoreResult):
        return result.prompt_tokens + result.continuation_tokens
    return result.prompt_tokens + result.completion_tokens


def _reason(exc: BaseException) -> str:
    """The engine's own exception (type: message) when Ray carries one, else Ray's last message line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
