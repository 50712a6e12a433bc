"""Jobs: submission (idempotency keys, per-owner limits), lookup with owner isolation, states, cancellation."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from schemas.errors import InvalidInputError, LimitExceededError, NotFoundError
from schemas.jobs import JobState
from schemas.spec import JobSpec
from service.db import Tx
from service.db.base import Row
from service.records import JobRecord
from service.store.base import UNFINISHED_STATES, StoreBase, placeholders
from service.store.events import insert_event


def spec_digest(spec: JobSpec) -> str:
    """sha256 of the spec's canonical JSON (what idempotency compares)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JobsMixin(StoreBase):
    def create_job(
        self,
        *,
        owner: str,
        spec: JobSpec,
        results_root: str,
        idempotency_key: str | None = None,
        max_unfinished: int | None = None,
        location: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a new queued job; returns (job, created).

        Its results go to ``<results_root>/<job id>``, or to ``location`` when given (local mode's ``--out``).

        With an ``idempotency_key`` already used by this owner, returns that job (created False) when
        the spec is the same and raises :class:`InvalidInputError` when it differs. Raises
        :class:`LimitExceededError` (429) when the owner already has ``max_unfinished`` unfinished jobs.
        One owner's submissions are serialised (a lock per owner), so neither rule races across replicas.
        """
        digest = spec_digest(spec)
        with self.db.transaction() as tx:
            tx.lock(f"moralscope owner {owner}")
            now = tx.now()
            if idempotency_key is not None:
                row = tx.one("SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, idempotency_key))
                if row is not None:
                    existing = job_record(row)
                    if existing.spec_sha256 != digest:
                        raise InvalidInputError(
                            f"Idempotency-Key {idempotency_key!r} was already used for job {existing.id} with a "
                            "different spec; use a new key for a new job",
                            field="Idempotency-Key",
                        )
                    return existing, False
            if max_unfinished is not None:
                count = tx.one(
                    f"SELECT COUNT(*) AS n FROM jobs WHERE owner = ? AND state IN ({placeholders(UNFINISHED_STATES)})",
                    (owner, *UNFINISHED_STATES),
                )
                unfinished = int(count["n"]) if count else 0
                if unfinished >= max_unfinished:
                    raise LimitExceededError(
                        f"you already have {unfinished} unfinished jobs, the most allowed per API key "
                        f"(MORALSCOPE_MAX_QUEUED_JOBS_PER_KEY={max_unfinished}); wait for one to finish or cancel one",
                        http_status=429,
                    )
            job_id = f"job_{secrets.token_hex(12)}"
            location = location or f"{results_root.rstrip('/')}/{job_id}"
            tx.execute(
                "INSERT INTO jobs (id, owner, idempotency_key, spec, spec_sha256, name, state, created_at, "
                "updated_at, location) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    owner,
                    idempotency_key,
                    spec.model_dump_json(),
                    digest,
                    spec.name,
                    "queued",
                    now,
                    now,
                    location,
                ),
            )
            insert_event(tx, job_id, "state", "queued", now)
            tx.executemany(
                "INSERT INTO job_models (job_id, position, model) VALUES (?, ?, ?)",
                [(job_id, i, m.key) for i, m in enumerate(spec.models)],
            )
            created = _select_job(tx, job_id)
        return created, True

    def find_by_idempotency_key(self, *, owner: str, idempotency_key: str) -> JobRecord | None:
        with self.db.read() as tx:
            row = tx.one("SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, idempotency_key))
        return None if row is None else job_record(row)

    def forget_idempotency_key(self, job_id: str) -> None:
        """Detach a job from its idempotency key (so that the key can start a new job)."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE jobs SET idempotency_key = NULL WHERE id = ?", (job_id,))

    def get_job(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        """The job, or :class:`NotFoundError` (also when it belongs to another owner)."""
        with self.db.read() as tx:
            row = tx.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None or (owner is not None and row["owner"] != owner):
            raise NotFoundError(f"no job {job_id!r}; list your jobs with GET /v1/jobs")
        return job_record(row)

    def list_jobs(
        self, *, owner: str | None, state: JobState | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and how many match over all pages."""
        where: list[str] = []
        params: list[Any] = []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.db.read() as tx:
            count = tx.one(f"SELECT COUNT(*) AS n FROM jobs {clause}", params)
            rows = tx.all(
                f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
        return [job_record(r) for r in rows], int(count["n"]) if count else 0

    def request_cancel(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        """Cancel a job: a queued one ends ``cancelled`` now, a running one goes ``cancelling``.

        Cancelling a finished job changes nothing (it is returned as it is).
        """
        self.get_job(job_id, owner=owner)
        with self.db.transaction() as tx:
            now = tx.now()
            # one statement each, so that a replica claiming the job meanwhile cannot slip in between
            cancelled = tx.execute(
                "UPDATE jobs SET state = ?, cancel_requested = 1, finished_at = ?, updated_at = ? "
                "WHERE id = ? AND state = ? AND lease_owner IS NULL",
                (JobState.CANCELLED.value, now, now, job_id, JobState.QUEUED.value),
            )
            if cancelled.rowcount:
                insert_event(tx, job_id, "state", "cancelled before it started", now)
            elif tx.execute(
                "UPDATE jobs SET state = ?, cancel_requested = 1, updated_at = ? "
                f"WHERE id = ? AND state IN ({placeholders(UNFINISHED_STATES)})",
                (JobState.CANCELLING.value, now, job_id, *UNFINISHED_STATES),
            ).rowcount:
                insert_event(tx, job_id, "state", "cancellation requested", now)
        return self.get_job(job_id)

    def is_cancel_requested(self, job_id: str) -> bool:
        with self.db.read() as tx:
            row = tx.one("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        return bool(row and row["cancel_requested"])

    def set_state(self, job_id: str, state: JobState, *, error: str | None = None, message: str | None = None) -> None:
        """Move a job to ``state`` (and log it). A finished job never changes, and a job being
        cancelled only leaves ``cancelling`` for a terminal state."""
        allowed_from = [s for s in UNFINISHED_STATES if s != JobState.CANCELLING.value or state.is_terminal]
        assignments = ["state = ?", "error = COALESCE(?, error)", "updated_at = ?"]
        with self.db.transaction() as tx:
            now = tx.now()
            self._guard(tx, job_id, now)
            params: list[Any] = [state.value, error, now]
            if state != JobState.QUEUED:
                assignments.append("started_at = COALESCE(started_at, ?)")
                params.append(now)
            if state.is_terminal:
                assignments.append("finished_at = ?")
                params.append(now)
            cursor = tx.execute(
                f"UPDATE jobs SET {', '.join(assignments)} WHERE id = ? AND state IN ({placeholders(allowed_from)})",
                (*params, job_id, *allowed_from),
            )
            if cursor.rowcount:
                insert_event(tx, job_id, "state", message or state.value, now)

    def set_provenance(self, job_id: str, provenance: dict[str, Any]) -> None:
        with self.db.transaction() as tx:
            self._guard(tx, job_id, tx.now())
            tx.execute("UPDATE jobs SET provenance = ? WHERE id = ?", (json.dumps(provenance), job_id))

    def set_failed_cells(self, job_id: str, cells: list[dict[str, Any]]) -> None:
        """Record the cells set aside at finalizing (schemas.jobs.FailedCell fields)."""
        with self.db.transaction() as tx:
            self._guard(tx, job_id, tx.now())
            tx.execute("UPDATE jobs SET failed_cells = ? WHERE id = ?", (json.dumps(cells), job_id))

    def jobs_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (every state, zeros included)."""
        with self.db.read() as tx:
            rows = tx.all("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        counts = dict.fromkeys((s.value for s in JobState), 0)
        counts.update({r["state"]: int(r["n"]) for r in rows})
        return counts


def _select_job(tx: Tx, job_id: str) -> JobRecord:
    row = tx.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
    assert row is not None, job_id
    return job_record(row)


def job_record(row: Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        owner=row["owner"],
        idempotency_key=row["idempotency_key"],
        spec=JobSpec.model_validate_json(row["spec"]),
        spec_sha256=row["spec_sha256"],
        state=JobState(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        run_started_at=row["run_started_at"],
        error=row["error"],
        location=row["location"],
        cancel_requested=bool(row["cancel_requested"]),
        lease_owner=row["lease_owner"],
        lease_expires=row["lease_expires"],
        provenance=json.loads(row["provenance"]) if row["provenance"] else None,
        crash_resumes=int(row["crash_resumes"]),
        lease_epoch=int(row["lease_epoch"]),
        crash_streak=int(row["crash_streak"]),
        failed_cells=json.loads(row["failed_cells"]) if row["failed_cells"] else None,
    )
