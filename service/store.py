"""The durable job store: jobs, their models, shards and events, in SQLite (see :mod:`service.db`).

Everything the service knows about a job lives here, so a killed server restarts from the store:
a job's state, its lease (which runner works on it), the shards it is cut into and which of them
are finished (with the Parquet part that holds each), and an event log for ``/events``.

Leases (:mod:`service.leases`) make "resume after a crash" safe without a second process stealing a
live job. The records it returns are in :mod:`service.records`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from schemas.errors import InvalidInputError, LimitExceededError, NotFoundError
from schemas.jobs import JobState
from schemas.spec import JobSpec
from service.db import Database
from service.leases import lease_is_stale
from service.records import EventRecord, JobRecord, ModelRecord, ShardKey, ShardRecord

__all__ = [
    "EventRecord",
    "JobRecord",
    "JobStore",
    "ModelRecord",
    "ShardKey",
    "ShardRecord",
    "spec_digest",
]

UNFINISHED_STATES: tuple[str, ...] = tuple(s.value for s in JobState if not s.is_terminal)
TERMINAL_STATES: tuple[str, ...] = tuple(s.value for s in JobState if s.is_terminal)


def spec_digest(spec: JobSpec) -> str:
    """sha256 of the spec's canonical JSON (what idempotency compares)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class JobStore:
    """Jobs, shards and events; every method is one short transaction and safe from any thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- jobs --------------------------------------------------------------------------------------
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
        """
        digest = spec_digest(spec)
        now = time.time()
        with self.db.transaction() as tx:
            if idempotency_key is not None:
                row = tx.execute(
                    "SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, idempotency_key)
                ).fetchone()
                if row is not None:
                    existing = _job(row)
                    if existing.spec_sha256 != digest:
                        raise InvalidInputError(
                            f"Idempotency-Key {idempotency_key!r} was already used for job {existing.id} with a "
                            "different spec; use a new key for a new job",
                            field="Idempotency-Key",
                        )
                    return existing, False
            if max_unfinished is not None:
                placeholders = ",".join("?" * len(UNFINISHED_STATES))
                (unfinished,) = tx.execute(
                    f"SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN ({placeholders})",
                    (owner, *UNFINISHED_STATES),
                ).fetchone()
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
                    JobState.QUEUED.value,
                    now,
                    now,
                    location,
                ),
            )
            _insert_event(tx, job_id, "state", "queued", now)
            tx.executemany(
                "INSERT INTO job_models (job_id, position, model) VALUES (?, ?, ?)",
                [(job_id, i, m.key) for i, m in enumerate(spec.models)],
            )
            row = tx.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row), True

    def find_by_idempotency_key(self, *, owner: str, idempotency_key: str) -> JobRecord | None:
        row = (
            self.db.connection()
            .execute("SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, idempotency_key))
            .fetchone()
        )
        return None if row is None else _job(row)

    def forget_idempotency_key(self, job_id: str) -> None:
        """Detach a job from its idempotency key (so that the key can start a new job)."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE jobs SET idempotency_key = NULL WHERE id = ?", (job_id,))

    def get_job(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        """The job, or :class:`NotFoundError` (also when it belongs to another owner)."""
        row = self.db.connection().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            raise NotFoundError(f"no job {job_id!r}; list your jobs with GET /v1/jobs")
        return _job(row)

    def list_jobs(
        self, *, owner: str | None, state: JobState | None = None, limit: int = 20, offset: int = 0
    ) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and how many match over all pages."""
        where, params = [], []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        conn = self.db.connection()
        (count,) = conn.execute(f"SELECT COUNT(*) FROM jobs {clause}", params).fetchone()
        rows = conn.execute(
            f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [_job(r) for r in rows], int(count)

    def request_cancel(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        """Cancel a job: a queued one ends ``cancelled`` now, a running one goes ``cancelling``.

        Cancelling a finished job changes nothing (it is returned as it is).
        """
        self.get_job(job_id, owner=owner)
        now = time.time()
        with self.db.transaction() as tx:
            row = tx.execute("SELECT state, lease_owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
            state = JobState(row["state"])
            if state == JobState.QUEUED and row["lease_owner"] is None:
                tx.execute(
                    "UPDATE jobs SET state = ?, cancel_requested = 1, finished_at = ?, updated_at = ? WHERE id = ?",
                    (JobState.CANCELLED.value, now, now, job_id),
                )
                _insert_event(tx, job_id, "state", "cancelled before it started", now)
            elif not state.is_terminal:
                tx.execute(
                    "UPDATE jobs SET state = ?, cancel_requested = 1, updated_at = ? WHERE id = ?",
                    (JobState.CANCELLING.value, now, job_id),
                )
                _insert_event(tx, job_id, "state", "cancellation requested", now)
        return self.get_job(job_id)

    def is_cancel_requested(self, job_id: str) -> bool:
        row = self.db.connection().execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def set_state(self, job_id: str, state: JobState, *, error: str | None = None, message: str | None = None) -> None:
        """Move a job to ``state`` (and log it). A finished job never changes, and a job being
        cancelled only leaves ``cancelling`` for a terminal state."""
        now = time.time()
        allowed_from = [s for s in UNFINISHED_STATES if s != JobState.CANCELLING.value or state.is_terminal]
        placeholders = ",".join("?" * len(allowed_from))
        with self.db.transaction() as tx:
            cursor = tx.execute(
                f"UPDATE jobs SET state = ?, error = COALESCE(?, error), updated_at = ?, "
                "started_at = CASE WHEN ? != 'queued' THEN COALESCE(started_at, ?) ELSE started_at END, "
                "finished_at = CASE WHEN ? THEN ? ELSE finished_at END "
                f"WHERE id = ? AND state IN ({placeholders})",
                (state.value, error, now, state.value, now, state.is_terminal, now, job_id, *allowed_from),
            )
            if cursor.rowcount:
                _insert_event(tx, job_id, "state", message or state.value, now)

    def set_provenance(self, job_id: str, provenance: dict[str, Any]) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE jobs SET provenance = ? WHERE id = ?", (json.dumps(provenance), job_id))

    # -- leases ------------------------------------------------------------------------------------
    def claim(self, *, lease_owner: str, ttl: float, job_id: str | None = None) -> JobRecord | None:
        """Take the lease of a job to run: ``job_id``, or else the oldest queued job or unfinished job
        whose lease is stale (a resumed job). Returns None when there is nothing to claim."""
        now = time.time()
        placeholders = ",".join("?" * len(UNFINISHED_STATES))
        with self.db.transaction() as tx:
            if job_id is not None:
                rows = tx.execute(
                    f"SELECT * FROM jobs WHERE id = ? AND state IN ({placeholders})", (job_id, *UNFINISHED_STATES)
                ).fetchall()
            else:
                rows = tx.execute(
                    f"SELECT * FROM jobs WHERE state IN ({placeholders}) ORDER BY created_at, id",
                    UNFINISHED_STATES,
                ).fetchall()
            for row in rows:
                if row["lease_owner"] is not None and not lease_is_stale(row["lease_owner"], row["lease_expires"], now):
                    continue
                # a lease still set means its runner died without releasing it (a crash, not a shutdown)
                crashed = int(row["lease_owner"] is not None)
                tx.execute(
                    "UPDATE jobs SET lease_owner = ?, lease_expires = ?, run_started_at = ?, updated_at = ?, "
                    "crash_resumes = crash_resumes + ? WHERE id = ?",
                    (lease_owner, now + ttl, now, now, crashed, row["id"]),
                )
                if row["state"] != JobState.QUEUED.value:
                    cause = "its runner died" if crashed else "a restart"
                    _insert_event(tx, row["id"], "log", f"resumed in state {row['state']} after {cause}", now)
                return _job(tx.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())
        return None

    def renew_leases(self, *, lease_owner: str, ttl: float) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE jobs SET lease_expires = ? WHERE lease_owner = ?", (time.time() + ttl, lease_owner))

    def release(self, job_id: str, *, lease_owner: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = ?",
                (job_id, lease_owner),
            )

    # -- models and shards -------------------------------------------------------------------------
    def models(self, job_id: str) -> list[ModelRecord]:
        rows = (
            self.db.connection()
            .execute("SELECT * FROM job_models WHERE job_id = ? ORDER BY position", (job_id,))
            .fetchall()
        )
        return [
            ModelRecord(
                r["position"],
                r["model"],
                r["phase"],
                r["resolved_path"],
                r["revision"],
                r["fingerprint"],
                json.loads(r["progress"]) if r["progress"] else None,
            )
            for r in rows
        ]

    def set_model_resolved(
        self, job_id: str, position: int, *, path: str, revision: str | None, fingerprint: str
    ) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE job_models SET resolved_path = ?, revision = ?, fingerprint = ? WHERE job_id = ? AND position = ?",
                (path, revision, fingerprint, job_id, position),
            )

    def set_model_phase(self, job_id: str, position: int, phase: str, *, message: str | None = None) -> None:
        now = time.time()
        with self.db.transaction() as tx:
            tx.execute("UPDATE job_models SET phase = ? WHERE job_id = ? AND position = ?", (phase, job_id, position))
            if message:
                _insert_event(tx, job_id, "log", message, now)

    def set_model_progress(self, job_id: str, position: int, progress: dict[str, Any]) -> None:
        """Replace a running model's live progress (a JSON object; see service.runner.progress)."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE job_models SET progress = ? WHERE job_id = ? AND position = ?",
                (json.dumps(progress), job_id, position),
            )

    def set_failed_cells(self, job_id: str, cells: list[dict[str, Any]]) -> None:
        """Record the cells set aside at finalizing (schemas.jobs.FailedCell fields)."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE jobs SET failed_cells = ? WHERE id = ?", (json.dumps(cells), job_id))

    def add_shards(self, job_id: str, shards: Iterable[tuple[ShardKey, int]]) -> None:
        """Record planned shards (and their request counts); already recorded ones are kept as they are."""
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT OR IGNORE INTO shards (job_id, model, benchmark, condition, phase, shard, requests) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(job_id, k.model, k.benchmark, k.condition, k.phase, k.shard, n) for k, n in shards],
            )

    def finish_shard(
        self,
        job_id: str,
        key: ShardKey,
        *,
        path: str,
        tokens: int,
        computed_tokens: int | None = None,
        errors: int = 0,
    ) -> None:
        """Record a shard as done: its part, its requested and computed tokens (None: all computed), error rows."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE shards SET state = 'done', path = ?, tokens = ?, computed_tokens = ?, errors = ?, "
                "finished_at = ? "
                "WHERE job_id = ? AND model = ? AND benchmark = ? AND condition = ? AND phase = ? AND shard = ?",
                (
                    path,
                    tokens,
                    tokens if computed_tokens is None else computed_tokens,
                    errors,
                    time.time(),
                    job_id,
                    *_key_tuple(key),
                ),
            )

    def fail_shards(self, job_id: str, keys: Sequence[ShardKey]) -> None:
        with self.db.transaction() as tx:
            tx.executemany(
                "UPDATE shards SET state = 'failed' WHERE job_id = ? AND model = ? AND benchmark = ? "
                "AND condition = ? AND phase = ? AND shard = ? AND state != 'done'",
                [(job_id, *_key_tuple(k)) for k in keys],
            )

    def shards(self, job_id: str) -> list[ShardRecord]:
        rows = self.db.connection().execute("SELECT * FROM shards WHERE job_id = ?", (job_id,)).fetchall()
        return sorted(
            (
                ShardRecord(
                    ShardKey(r["model"], r["benchmark"], r["condition"], r["phase"], r["shard"]),
                    r["requests"],
                    r["state"],
                    r["path"],
                    r["tokens"],
                    r["finished_at"],
                    r["computed_tokens"],
                    r["errors"],
                )
                for r in rows
            ),
            key=lambda s: s.key,
        )

    # -- events ------------------------------------------------------------------------------------
    def add_event(self, job_id: str, type_: str, message: str) -> None:
        with self.db.transaction() as tx:
            _insert_event(tx, job_id, type_, message, time.time())

    def events(self, job_id: str, *, after_id: int = 0) -> list[EventRecord]:
        rows = (
            self.db.connection()
            .execute("SELECT * FROM events WHERE job_id = ? AND id > ? ORDER BY id", (job_id, after_id))
            .fetchall()
        )
        return [EventRecord(r["id"], r["job_id"], r["created_at"], r["type"], r["message"]) for r in rows]

    # -- service-wide numbers (/metrics) -----------------------------------------------------------
    def jobs_by_state(self) -> dict[str, int]:
        rows = self.db.connection().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys((s.value for s in JobState), 0)
        counts.update({r[0]: int(r[1]) for r in rows})
        return counts

    def shard_totals(self) -> dict[str, int]:
        """Requests, requested and computed tokens and error rows of finished shards, by phase, over all jobs."""
        rows = (
            self.db.connection()
            .execute(
                "SELECT phase, SUM(requests), SUM(tokens), SUM(computed_tokens), SUM(errors) FROM shards "
                "WHERE state = 'done' GROUP BY phase"
            )
            .fetchall()
        )
        totals = {"reason_requests": 0, "score_requests": 0, "tokens": 0, "computed_tokens": 0, "errors": 0}
        for phase, requests, tokens, computed, errors in rows:
            totals[f"{phase}_requests"] = int(requests or 0)
            totals["tokens"] += int(tokens or 0)
            totals["computed_tokens"] += int(computed or 0)
            totals["errors"] += int(errors or 0)
        return totals


def _key_tuple(key: ShardKey) -> tuple[int, str, str, str, int]:
    return (key.model, key.benchmark, key.condition, key.phase, key.shard)


def _insert_event(tx: sqlite3.Connection, job_id: str, type_: str, message: str, now: float) -> None:
    tx.execute(
        "INSERT INTO events (job_id, created_at, type, message) VALUES (?, ?, ?, ?)", (job_id, now, type_, message)
    )


def _job(row: sqlite3.Row) -> JobRecord:
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
        failed_cells=json.loads(row["failed_cells"]) if row["failed_cells"] else None,
    )
