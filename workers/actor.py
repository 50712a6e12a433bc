"""The Ray actor that hosts one inference engine (STYLE 10: Ray at arm's length).

:class:`EngineHost` is a plain class: it builds the engine from an engine factory (default
:func:`workers.engine.load_engine`) and serves batches. :data:`EngineActor` is the same class made a
Ray actor; the caller chooses its resources (``EngineActor.options(num_cpus=..., num_gpus=...)``).
Only plain data crosses the boundary: lists of the frozen request/result dataclasses of
:mod:`schemas.inference` in, :class:`BatchOutcome` (or the same lists) out, :class:`EngineInfo` from
:meth:`EngineHost.info`.

Failures, at the boundary:

- a request the engine cannot serve is **data**: engines report it as a result with ``error``; an
  engine that raises instead is **bisected** here (:meth:`EngineHost.run_batch`): the batch is split in
  halves until the request(s) that raise are alone, and each of those becomes an error result carrying
  the exception's message, while the rest of the batch is served normally;
- a dead engine process reaches the caller as ``ray.exceptions.RayActorError``, a hung one as a batch
  that misses its deadline; the pool replaces the actor (see :mod:`workers.pool`).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import ray

from schemas.inference import EngineConfig, GenerateRequest, GenerateResult, ScoreRequest, ScoreResult
from workers.engine import Engine, load_engine

log = logging.getLogger(__name__)

EngineFactory = Callable[[EngineConfig], Engine]
"""Builds an engine from its config inside the actor process; must be picklable (a module-level callable)."""

BatchKind = Literal["score", "generate"]
Request = ScoreRequest | GenerateRequest
Result = ScoreResult | GenerateResult


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an actor reports about the engine it hosts and where it runs."""

    model: str
    """The model folder the engine loaded."""
    engine: str
    """The configured engine name (``hf``, ``vllm``)."""
    engine_class: str
    """The class actually hosted (differs from ``engine`` with a custom engine factory)."""
    dtype: str
    device: str
    threads: int | None
    """torch's intra-op threads in the actor process (None when torch is not loaded)."""
    prompt_format: str
    """The resolved prompt format (``chat`` or ``human_assistant``)."""
    pid: int
    hostname: str
    node_id: str
    """The Ray node the actor runs on (empty outside Ray)."""
    stats: dict[str, int]
    """Counters the engine keeps, if any (e.g. the vllm engine's prefix-cache hits)."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """A served batch: results in request order, and how long the engine worked on it."""

    results: list[Result]
    seconds: float
    """Wall time of the engine calls for this batch (bisection included)."""
    raised: int
    """Requests whose error result comes from an exception the engine raised (isolated by bisection)."""


class EngineHost:
    """Hosts one engine; the body of :data:`EngineActor`, usable without Ray (e.g. in tests)."""

    def __init__(self, config: EngineConfig, engine_factory: EngineFactory | None = None) -> None:
        factory = engine_factory if engine_factory is not None else load_engine
        self.engine = factory(config)

    def score(self, batch: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """The engine's scores for a batch, in request order (an exception propagates)."""
        return self.engine.score(batch)

    def generate(self, batch: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """The engine's samples for a batch, in request order (an exception propagates)."""
        return self.engine.generate(batch)

    def run_batch(self, kind: BatchKind, batch: Sequence[Request]) -> BatchOutcome:
        """Serve a batch; requests the engine raises on become error results (see the module docstring).

        Raises ValueError when the engine returns a different number of results than requests (a broken
        engine, not a bad request).
        """
        started = time.perf_counter()
        counter = [0]
        results = self._serve(kind, list(batch), counter)
        return BatchOutcome(results, time.perf_counter() - started, counter[0])

    def _serve(self, kind: BatchKind, batch: list[Request], raised: list[int]) -> list[Result]:
        try:
            if kind == "score":
                results: list[Result] = list(self.engine.score(batch))  # type: ignore[arg-type]
            else:
                results = list(self.engine.generate(batch))  # type: ignore[arg-type]
        except Exception as exc:
            if len(batch) == 1:
                raised[0] += 1
                message = f"{type(exc).__name__}: {exc}"
                log.warning("the engine raised on a request; it becomes an error row: %s", message)
                return [ScoreResult.failed(message) if kind == "score" else GenerateResult.failed(message)]
            half = len(batch) // 2
            return self._serve(kind, batch[:half], raised) + self._serve(kind, batch[half:], raised)
        if len(results) != len(batch):
            raise ValueError(f"the engine returned {len(results)} results for a batch of {len(batch)} requests")
        return results

    def info(self) -> EngineInfo:
        """The hosted engine and the process it runs in."""
        config = self.engine.config
        return EngineInfo(
            model=config.model_path,
            engine=config.engine,
            engine_class=type(self.engine).__name__,
            dtype=str(getattr(self.engine, "dtype", config.dtype)).removeprefix("torch."),
            device=str(getattr(self.engine, "device", None) or config.device or "cpu"),
            threads=_torch_threads(),
            prompt_format=self.engine.renderer.prompt_format,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            node_id=_ray_node_id(),
            stats=dict(getattr(self.engine, "stats", {})),
        )

    def close(self) -> None:
        """Release the engine (the actor process is ended by the caller afterwards)."""
        self.engine.close()


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def _ray_node_id() -> str:
    if not ray.is_initialized():
        return ""
    return str(ray.get_runtime_context().get_node_id())


# One engine per process and one call at a time (a synchronous actor's default max_concurrency of 1):
# engines are not thread-safe, and a queued batch waits in Ray's actor queue, which runs batches in the
# order they were sent (the pool relies on it to know which batch is running). Restarts are the pool's
# job (a fresh actor per failure), so Ray neither restarts the actor nor retries its tasks behind it.
EngineActor = ray.remote(max_restarts=0, max_task_retries=0)(EngineHost)
""":class:`EngineHost` as a Ray actor class; set resources with ``EngineActor.options(...)``."""
