"""Which batch an actor runs next: a pending queue with priorities and prefix affinity (no Ray here).

Work reaches the pool as **submissions** (one batch of requests each, with a priority, an affinity
key and a tag). A submission travels as one or more **pieces**: normally one, more once the pool cuts
it in halves to isolate a request that keeps losing its actor (:meth:`Piece.halves`).

When an actor has room, :meth:`PendingQueue.take` picks, in priority order (lower first) and, within a
priority, oldest first:

1. a piece whose affinity key is bound to this actor (its prefix is likely in this actor's cache);
2. else a piece whose key is bound to no actor (or that has no key);
3. else any piece (an idle actor steals work rather than wait: busy beats cached).

Dispatching a piece binds its key to the actor, so the batches of one key (the same items under other
conditions, a CoT answer after its reasoning) follow each other on the same actor.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from workers.progress import Completion, Kind

_sequence = itertools.count()


@dataclass(eq=False)
class Submission:
    """One submitted batch and its results as they come in."""

    ticket: int
    kind: Kind
    requests: list[Any]
    priority: int
    affinity: Hashable | None
    tag: Any
    results: list[Any] = field(init=False)
    remaining: int = field(init=False)
    engine_seconds: float = 0.0
    sequence: int = field(default_factory=lambda: next(_sequence))

    def __post_init__(self) -> None:
        self.results = [None] * len(self.requests)
        self.remaining = len(self.requests)

    def completion(self) -> Completion:
        """What :meth:`workers.pool.EnginePool.poll` returns for it once every result is in."""
        results = self.results
        return Completion(
            ticket=self.ticket,
            kind=self.kind,
            tag=self.tag,
            results=results,
            tokens_requested=sum(r.tokens_requested for r in results),
            tokens_computed=sum(r.tokens_computed for r in results),
            errors=sum(r.error is not None for r in results),
            engine_seconds=self.engine_seconds,
        )


@dataclass(eq=False)
class Piece:
    """A contiguous part of a submission, sent to an actor as one batch."""

    submission: Submission
    start: int
    size: int
    failures: int = 0
    """Times this piece (or the piece it was cut from) lost its actor or missed its deadline."""

    @property
    def requests(self) -> list[Any]:
        return self.submission.requests[self.start : self.start + self.size]

    @property
    def kind(self) -> Kind:
        return self.submission.kind

    def after_failure(self, max_retries: int) -> list[Piece]:
        """What to send again after this piece lost its actor (died or missed its deadline) once more: itself
        while it has failed at most ``max_retries`` times, then its two halves (each failing on from there),
        and nothing for a single request that keeps failing: it is given up (an error result)."""
        self.failures += 1
        if self.failures <= max_retries:
            return [self]
        if self.size > 1:
            return list(self.halves())
        return []

    def halves(self) -> tuple[Piece, Piece]:
        """The piece cut in two (it must hold at least two requests); failures carry over."""
        half = self.size // 2
        return (
            Piece(self.submission, self.start, half, self.failures),
            Piece(self.submission, self.start + half, self.size - half, self.failures),
        )


class PendingQueue:
    """Pieces waiting for an actor, and which actor each affinity key is bound to."""

    def __init__(self) -> None:
        self._pieces: list[Piece] = []
        self._bound: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._pieces)

    def requests(self) -> int:
        """Requests waiting in the queue."""
        return sum(piece.size for piece in self._pieces)

    def push(self, piece: Piece) -> None:
        self._pieces.append(piece)
        self._pieces.sort(key=lambda p: (p.submission.priority, p.submission.sequence, p.start))

    def take(self, actor: int, *, steal: bool = True) -> Piece | None:
        """The piece ``actor`` should run next (see the module docstring), removed from the queue.

        ``steal=False`` (an actor that is busy and only has room in its queue) never takes a piece whose key
        is bound to another actor.
        """
        best: tuple[int, int, int] | None = None  # (priority, preference, position)
        for position, piece in enumerate(self._pieces):
            key = piece.submission.affinity
            owner = self._bound.get(key) if key is not None else None
            preference = 0 if owner == actor else 1 if owner is None else 2
            if preference == 2 and not steal:
                continue
            candidate = (piece.submission.priority, preference, position)
            if best is None or candidate < best:
                best = candidate
                if preference == 0 and position == 0:
                    break
        if best is None:
            return None
        piece = self._pieces.pop(best[2])
        if piece.submission.affinity is not None:
            self._bound[piece.submission.affinity] = actor
        return piece

    def bound_actor(self, key: Hashable) -> int | None:
        """The actor ``key`` is bound to (None when it has not run yet)."""
        return self._bound.get(key)

    def drop(self, predicate: Any = None) -> list[Piece]:
        """Remove and return every piece (or those matching ``predicate``)."""
        dropped = [p for p in self._pieces if predicate is None or predicate(p)]
        self._pieces = [p for p in self._pieces if p not in dropped]
        return dropped
