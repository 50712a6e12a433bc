"""The pending queue's choice of the next batch for an actor: priorities, affinity, stealing (no Ray)."""

from __future__ import annotations

from workers.routing import PendingQueue, Piece, Submission


def piece(ticket: int, *, priority: int = 0, key: object = None, size: int = 4) -> Piece:
    return Piece(Submission(ticket, "score", list(range(size)), priority, key, None), 0, size)


def test_lower_priority_values_go_first_then_oldest() -> None:
    queue = PendingQueue()
    for p in (piece(0, priority=1), piece(1, priority=0), piece(2, priority=1)):
        queue.push(p)
    assert [queue.take(0).submission.ticket for _ in range(3)] == [1, 0, 2]  # type: ignore[union-attr]
    assert queue.take(0) is None


def test_a_key_sticks_to_the_actor_that_ran_it_first() -> None:
    queue = PendingQueue()
    for ticket, key in enumerate(["a", "b", "a", "b"]):
        queue.push(piece(ticket, key=key))
    first = queue.take(0)
    assert first is not None
    assert first.submission.affinity == "a"
    second = queue.take(1)
    assert second is not None
    assert second.submission.affinity == "b"
    assert queue.bound_actor("a") == 0
    assert queue.bound_actor("b") == 1
    third = queue.take(1)
    assert third is not None
    assert third.submission.ticket == 3
    assert queue.take(1, steal=False) is None  # a busy actor does not take another actor's key
    stolen = queue.take(1)  # an idle one does: busy beats cached
    assert stolen is not None
    assert stolen.submission.ticket == 2
    assert queue.bound_actor("a") == 1


def test_halves_cover_the_piece_and_keep_its_failures() -> None:
    whole = piece(0, size=5)
    whole.failures = 2
    left, right = whole.halves()
    assert (left.start, left.size, right.start, right.size) == (0, 2, 2, 3)
    assert left.failures == right.failures == 2
    assert left.requests + right.requests == whole.requests
