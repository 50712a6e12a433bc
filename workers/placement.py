"""Reserving a model's resources at once: one Ray placement group per engine pool.

A pool of ``n`` actors needs ``n`` bundles of ``{CPU: c, GPU: g}``. :class:`Reservation` asks Ray for all
of them as one placement group, which Ray grants atomically (all bundles or none) and in the order
requests arrive. Two pools (two models of a job, or two API replicas on one cluster) can therefore never
each take half of the GPUs and deadlock: the second waits, whole, until the first releases its group.
Actors are then created inside their bundle (:meth:`Reservation.options`); a replacement actor goes
into the bundle of the actor it replaces.

A group created by a driver is removed by Ray when that driver exits, so a crashed service does not
leak reservations. Bundles that would be empty (``c = g = 0``) need no reservation.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

_names = itertools.count()


class Reservation:
    """``bundles`` × ``{CPU: num_cpus, GPU: num_gpus}`` requested from Ray as one placement group."""

    def __init__(self, bundles: int, *, num_cpus: float, num_gpus: float, label: str = "engine-pool") -> None:
        if bundles < 1:
            raise ValueError(f"bundles must be >= 1, got {bundles}")
        if num_cpus < 0 or num_gpus < 0:
            raise ValueError(f"num_cpus and num_gpus must be >= 0, got {num_cpus}, {num_gpus}")
        self.bundles = bundles
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.released = False
        bundle = {name: value for name, value in (("CPU", num_cpus), ("GPU", num_gpus)) if value > 0}
        self.group: Any = None
        if bundle:
            self.group = placement_group(
                [dict(bundle) for _ in range(bundles)],
                strategy="SPREAD" if bundles > 1 else "PACK",
                name=f"moralscope-{label}-{os.getpid()}-{next(_names)}",
            )
            self._ready_ref = self.group.ready()

    @property
    def demand(self) -> str:
        """What the reservation asks for, for messages."""
        return f"{self.bundles} × {{CPU: {self.num_cpus:g}, GPU: {self.num_gpus:g}}}"

    def wait(self, timeout_s: float) -> bool:
        """Whether the whole reservation is granted (waits at most ``timeout_s``)."""
        if self.group is None:
            return True
        ready, _ = ray.wait([self._ready_ref], timeout=timeout_s)
        return bool(ready)

    def options(self, index: int) -> dict[str, Any]:
        """Actor options placing an actor with this reservation's resources in bundle ``index``."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self.group, placement_group_bundle_index=index
            )
        return options

    def release(self) -> None:
        """Give the resources back (idempotent); actors in the group must be ended first."""
        if self.released:
            return
        self.released = True
        if self.group is not None:
            # Ray gone or the group already removed: nothing is held any more
            with contextlib.suppress(Exception):
                remove_placement_group(self.group)
