"""Per-batch deadlines: how long a batch may run before its actor counts as hung.

The deadline of a batch of ``n`` requests of one kind is ``max(floor_s, factor × n × s)``, where ``s`` is
the measured engine time per request of that kind (an exponentially weighted mean over finished
batches, as the actors report it). Until a kind has been measured only the floor applies. The floor
is generous by default (ten minutes): a deadline exists to end hangs, not to police slow batches, and
the first batches of a model pay for warm-up. A batch's clock starts when its actor begins it (the
actor runs its queue in order), not when it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_FLOOR_S = 600.0
DEFAULT_FACTOR = 10.0


@dataclass
class DeadlinePolicy:
    """Deadlines from measured throughput, with a floor (see the module docstring)."""

    floor_s: float = DEFAULT_FLOOR_S
    factor: float = DEFAULT_FACTOR
    smoothing: float = 0.2
    """Weight of the newest measurement in the running mean."""
    _per_request_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.floor_s <= 0:
            raise ValueError(f"floor_s must be > 0, got {self.floor_s}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")

    def observe(self, kind: str, requests: int, seconds: float) -> None:
        """Record that a batch of ``requests`` requests of ``kind`` took ``seconds`` of engine time."""
        if requests <= 0 or seconds < 0:
            return
        value = seconds / requests
        previous = self._per_request_s.get(kind)
        self._per_request_s[kind] = value if previous is None else previous + self.smoothing * (value - previous)

    def seconds_per_request(self, kind: str) -> float | None:
        """The measured engine time per request of ``kind`` (None before any measurement)."""
        return self._per_request_s.get(kind)

    def deadline_s(self, kind: str, requests: int) -> float:
        """How long a batch of ``requests`` requests of ``kind`` may run."""
        measured = self._per_request_s.get(kind)
        if measured is None:
            return self.floor_s
        return max(self.floor_s, self.factor * requests * measured)
