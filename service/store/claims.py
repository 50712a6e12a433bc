"""Leases: which runner works on a job, taking over the jobs of dead runners, and crash streaks.

A runner (one per server process) claims a job by writing its ``lease_owner`` id and an expiry
``lease_expires``, renews the leases it holds well before they expire, and releases them on a
graceful shutdown. A job whose lease has expired belongs to a runner that died (killed, OOM, node
lost) or was paused for longer than the lease: any runner may claim it, and the claim raises the
job's ``lease_epoch`` so that the old holder's writes are refused from then on (fencing, see
:mod:`service.store.base`). Expiry is judged by the database's clock only, so replicas with skewed
clocks agree; nothing depends on host names or process ids. A runner never takes over a lease of
its own: a job it still runs keeps running in its thread.

Claiming is one transaction: PostgreSQL picks the row ``FOR UPDATE SKIP LOCKED``, so replicas
claiming at once each get a different job; SQLite's write transactions are serial anyway.

**Crash streaks.** Taking over an expired lease counts a death of the job's runner in
``crash_streak``; committing a shard resets it. The runner stops a job whose streak reaches
``MORALSCOPE_CRASH_LOOP_LIMIT`` (deaths in a row with no progress in between: a job that kills the
service), while a job that keeps committing survives any number of restarts and preemptions.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

from service.records import JobRecord
from service.store.base import UNFINISHED_STATES, StoreBase, placeholders
from service.store.events import insert_event
from service.store.jobs import job_record


def new_lease_owner() -> str:
    """A fresh lease holder id for a runner. Host and pid are only there for people reading the store."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(8)}"


class ClaimsMixin(StoreBase):
    def claim(self, *, lease_owner: str, ttl: float, job_id: str | None = None) -> JobRecord | None:
        """Take the lease of a job to run for ``ttl`` seconds: ``job_id``, or else the oldest unfinished
        job that has no lease or whose lease has expired (a resumed job). None when there is nothing."""
        with self.db.transaction() as tx:
            now = tx.now()
            where = [
                f"state IN ({placeholders(UNFINISHED_STATES)})",
                "(lease_owner IS NULL OR (lease_expires < ? AND lease_owner <> ?))",
            ]
            params: list[Any] = [*UNFINISHED_STATES, now, lease_owner]
            if job_id is not None:
                where.append("id = ?")
                params.append(job_id)
            row = tx.one(
                f"SELECT id, state, lease_owner FROM jobs WHERE {' AND '.join(where)} "
                f"ORDER BY created_at, id LIMIT 1{tx.dialect.skip_locked}",
                params,
            )
            if row is None:
                return None
            died = int(row["lease_owner"] is not None)  # a lease left to expire: its runner did not release it
            tx.execute(
                "UPDATE jobs SET lease_owner = ?, lease_expires = ?, lease_epoch = lease_epoch + 1, "
                "run_started_at = ?, updated_at = ?, crash_resumes = crash_resumes + ?, "
                "crash_streak = crash_streak + ? WHERE id = ?",
                (lease_owner, now + ttl, now, now, died, died, row["id"]),
            )
            if row["state"] == "queued" and not died:
                message = f"claimed by runner {lease_owner}"
            else:
                cause = "its runner died (its lease expired)" if died else "a restart"
                message = f"resumed in state {row['state']} after {cause}, by runner {lease_owner}"
            insert_event(tx, row["id"], "log", message, now)
            claimed = tx.one("SELECT * FROM jobs WHERE id = ?", (row["id"],))
        assert claimed is not None
        return job_record(claimed)

    def renew_leases(self, *, lease_owner: str, ttl: float) -> set[str]:
        """Extend every lease of ``lease_owner`` to ``ttl`` seconds from now; returns the jobs it still
        holds (a job missing from it was taken over: its runner must stop working on it)."""
        with self.db.transaction() as tx:
            now = tx.now()
            rows = tx.all(
                "UPDATE jobs SET lease_expires = ? WHERE lease_owner = ? RETURNING id", (now + ttl, lease_owner)
            )
        return {str(r["id"]) for r in rows}

    def count_crash(self, job_id: str, message: str) -> None:
        """Count a death of the process running a job while its runner (and lease) lived on (the server's job
        executor, :mod:`service.runner.executor`): like a takeover, it extends the job's crash streak."""
        with self.db.transaction() as tx:
            now = tx.now()
            self._guard(tx, job_id, now)
            tx.execute(
                "UPDATE jobs SET crash_resumes = crash_resumes + 1, crash_streak = crash_streak + 1 WHERE id = ?",
                (job_id,),
            )
            insert_event(tx, job_id, "log", message, now)

    def release(self, job_id: str, *, lease_owner: str) -> None:
        """Give a job's lease back (a graceful stop: the next claim is not counted as a death)."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = ?",
                (job_id, lease_owner),
            )
