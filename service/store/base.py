"""What the parts of the job store share: the database, fencing of a runner's writes, job states.

**Fencing.** Each claim of a job raises its ``lease_epoch``. A runner works through a *fenced* store
(:meth:`StoreBase.fenced`), and every write it makes about its job first checks, in the same
transaction and holding the job's row, that the epoch is still the one it claimed; otherwise the
write is refused with :class:`LeaseLost` and nothing changes. So a replica that was paused past its
lease (not dead) cannot commit a shard or change a state after another replica took the job over,
whatever the clocks say. Writes from the API (cancellation) are not fenced.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from schemas.jobs import JobState
from service.db import Database, Tx

UNFINISHED_STATES: tuple[str, ...] = tuple(s.value for s in JobState if not s.is_terminal)
TERMINAL_STATES: tuple[str, ...] = tuple(s.value for s in JobState if s.is_terminal)


def placeholders(values: Sequence[object]) -> str:
    """``?,?,?``: one placeholder per value (for ``IN (...)``)."""
    return ",".join("?" * len(values))


class LeaseLost(Exception):
    """A runner's write was refused: another runner has claimed the job since (a newer epoch).

    Not a failure of the job: the runner that gets it must stop working on the job quietly (like a
    shutdown) and leave it to the new holder.
    """

    def __init__(self, job_id: str, epoch: int) -> None:
        super().__init__(f"job {job_id}: lease epoch {epoch} was taken over by another runner")
        self.job_id = job_id
        self.epoch = epoch


@dataclass(frozen=True)
class Fence:
    job_id: str
    epoch: int


class StoreBase:
    """The database and, for a runner's view of one job, the fence its writes must pass."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.fence: Fence | None = None

    def fenced(self, job_id: str, epoch: int) -> Self:
        """This store, with every write about ``job_id`` refused (:class:`LeaseLost`) once the job's
        epoch is no longer ``epoch`` (the runner's claim); writes about other jobs are errors."""
        view = copy.copy(self)
        view.fence = Fence(job_id, epoch)
        return view

    def _guard(self, tx: Tx, job_id: str, now: float) -> None:
        """Check the fence inside a write transaction (a no-op for an unfenced store).

        The UPDATE locks the job's row until the transaction ends, so a concurrent claim either
        happened before (the epoch differs: refused) or waits until this write has committed.
        """
        if self.fence is None:
            return
        if job_id != self.fence.job_id:
            raise ValueError(f"a store fenced for job {self.fence.job_id} cannot write job {job_id}")
        cursor = tx.execute(
            "UPDATE jobs SET updated_at = ? WHERE id = ? AND lease_epoch = ?", (now, job_id, self.fence.epoch)
        )
        if cursor.rowcount != 1:
            raise LeaseLost(job_id, self.fence.epoch)
