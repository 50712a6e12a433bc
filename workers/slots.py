"""The actors of an engine pool: one per bundle of its reservation, started, replaced and watched.

An :class:`ActorSlot` is one position of the pool (one bundle of its placement group): the actor there now,
the batches sent to it in order (a synchronous actor runs them in that order, so the first is the one
running), and, after a replacement, the probe of the new actor while it loads its engine.
:class:`ActorSlots` starts them all (waiting for the reservation, then for every engine to load), replaces
one on request, and checks replacements as they come up.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from schemas.errors import EngineFailure
from schemas.inference import EngineConfig
from workers.actor import EngineActor, EngineFactory
from workers.deadlines import DeadlinePolicy
from workers.placement import Reservation
from workers.progress import PoolCancelled, PoolCounters
from workers.routing import Piece

log = logging.getLogger(__name__)

POLL_S = 0.25


@dataclass(eq=False)
class SentBatch:
    """A piece sent to an actor, and when."""

    piece: Piece
    ref: Any
    sent_at: float


class ActorSlot:
    """One actor position (one bundle of the reservation); ``generation`` changes when its actor is replaced."""

    def __init__(self, index: int, handle: Any) -> None:
        self.index = index
        self.handle = handle
        self.generation = 0
        self.in_flight: deque[SentBatch] = deque()
        self.free_since = time.monotonic()
        """When the actor finished its last batch (the running batch's clock starts no earlier)."""
        self.starting: Any = None
        """The ready probe of a replacement actor still loading its engine (None when ready)."""
        self.starting_since = 0.0
        self.failed_starts = 0


class ActorSlots:
    """Every actor of a pool (see the module docstring)."""

    def __init__(
        self,
        config: EngineConfig,
        reservation: Reservation,
        *,
        engine_factory: EngineFactory | None,
        env_vars: dict[str, str],
        counters: PoolCounters,
        startup_timeout_s: float,
        max_failed_starts: int,
    ) -> None:
        self.config = config
        self.reservation = reservation
        self.engine_factory = engine_factory
        self.runtime_env = {"env_vars": env_vars}
        self.counters = counters
        self.startup_timeout_s = startup_timeout_s
        self.max_failed_starts = max_failed_starts
        self.slots: list[ActorSlot] = []

    def __iter__(self) -> Iterator[ActorSlot]:
        return iter(self.slots)

    def starting_probes(self) -> list[Any]:
        return [slot.starting for slot in self.slots if slot.starting is not None]

    def _new_actor(self, index: int) -> Any:
        options = {**self.reservation.options(index), "runtime_env": self.runtime_env}
        return EngineActor.options(**options).remote(self.config, self.engine_factory)

    def start(self, cancelled: Callable[[], bool] | None) -> None:
        """Wait for the reservation, start an actor in every bundle and wait until each has loaded its engine."""
        deadline = time.monotonic() + self.startup_timeout_s
        config, timeout_s = self.config, self.startup_timeout_s

        def left() -> float:
            return min(POLL_S, max(0.0, deadline - time.monotonic()))

        while not self.reservation.wait(left()):
            if cancelled is not None and cancelled():
                raise PoolCancelled(0, 0)
            if time.monotonic() >= deadline:
                available = ray.available_resources()  # type: ignore[no-untyped-call]
                raise EngineFailure(
                    f"the resources for {self.reservation.bundles} engine actor(s) of {config.model_path} "
                    f"({self.reservation.demand}) were not free after {timeout_s:.0f}s; the cluster may lack them "
                    f"(available: {available})"
                )
        self.slots = [ActorSlot(i, self._new_actor(i)) for i in range(self.reservation.bundles)]
        refs = [slot.handle.info.remote() for slot in self.slots]
        pending = refs
        while pending:
            _, pending = ray.wait(refs, num_returns=len(refs), timeout=left())
            if pending and cancelled is not None and cancelled():
                raise PoolCancelled(0, 0)
            if pending and time.monotonic() >= deadline:
                raise EngineFailure(
                    f"{len(pending)} of {len(refs)} engine actors for {config.model_path} were not ready after "
                    f"{timeout_s:.0f}s (loading the model took too long)"
                )
        for ref in refs:
            try:
                ray.get(ref)
            except RayError as exc:
                raise EngineFailure(
                    f"the {config.engine} engine for {config.model_path} could not be started: {reason(exc)}"
                ) from exc
        now = time.monotonic()
        for slot in self.slots:
            slot.free_since = now

    def replace(self, slot: ActorSlot) -> None:
        """End the slot's actor and start a fresh one in its bundle."""
        kill(slot.handle)
        slot.handle = self._new_actor(slot.index)
        slot.generation += 1
        slot.starting = slot.handle.info.remote()
        slot.starting_since = time.monotonic()
        self.counters.actors_replaced += 1

    def check_starting(self) -> None:
        """Mark replacements that have loaded as ready; raise EngineFailure for one that cannot load."""
        config = self.config
        for slot in self.slots:
            if slot.starting is None:
                continue
            ready, _ = ray.wait([slot.starting], timeout=0)
            if not ready:
                if time.monotonic() - slot.starting_since > self.startup_timeout_s:
                    raise EngineFailure(
                        f"a replacement {config.engine} engine for {config.model_path} was not ready after "
                        f"{self.startup_timeout_s:.0f}s"
                    )
                continue
            try:
                ray.get(slot.starting)
            except RayActorError as exc:
                slot.failed_starts += 1
                if exc.actor_init_failed or slot.failed_starts > self.max_failed_starts:
                    raise EngineFailure(
                        f"a replacement {config.engine} engine could not be started: {reason(exc)}"
                    ) from exc
                log.warning("a replacement engine actor died while starting (%s); starting another", reason(exc))
                self.replace(slot)
                continue
            slot.starting = None
            slot.failed_starts = 0
            slot.free_since = time.monotonic()

    def overdue(self, deadlines: DeadlinePolicy) -> list[tuple[ActorSlot, float]]:
        """Slots whose running batch has run past its deadline, with that deadline."""
        now, late = time.monotonic(), []
        for slot in self.slots:
            if slot.starting is not None or not slot.in_flight:
                continue
            head = slot.in_flight[0]
            limit = deadlines.deadline_s(head.piece.kind, head.piece.size)
            if now - max(head.sent_at, slot.free_since) > limit:
                log.warning(
                    "a batch of %d %s requests ran past its deadline of %.1fs on engine actor %d; replacing the actor",
                    head.piece.size,
                    head.piece.kind,
                    limit,
                    slot.index,
                )
                late.append((slot, limit))
        return late

    def close(self, timeout_s: float) -> None:
        """Close every loaded engine, then end every actor."""
        try:
            refs = [slot.handle.close.remote() for slot in self.slots if slot.starting is None]
            if refs:
                ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        finally:
            for slot in self.slots:
                kill(slot.handle)


def kill(handle: Any) -> None:
    try:
        ray.kill(handle, no_restart=True)
    except Exception as exc:  # an actor that is already gone need not be killed
        log.debug("killing engine actor failed: %s", exc)


def reason(exc: BaseException) -> str:
    """The engine's own exception (type: message) when Ray carries one, else Ray's last message line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
