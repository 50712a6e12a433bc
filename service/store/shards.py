"""The models of each job and its shards: the unit of progress, of commits and of restarts.

A shard is finished by :meth:`ShardsMixin.finish_shard` once its Parquet part is written; that
commit is what a restarted (or taken-over) job resumes from, and it also ends a crash streak: a job
that keeps committing is never stopped as a crash loop (see :mod:`service.store.claims`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from service.db.base import Row
from service.records import ModelRecord, ShardKey, ShardRecord
from service.store.base import StoreBase, placeholders
from service.store.events import insert_event

_SHARD_WHERE = "job_id = ? AND model = ? AND benchmark = ? AND condition = ? AND phase = ? AND shard = ?"


def key_tuple(key: ShardKey) -> tuple[int, str, str, str, int]:
    return (key.model, key.benchmark, key.condition, key.phase, key.shard)


class ShardsMixin(StoreBase):
    # -- models ------------------------------------------------------------------------------------
    def models(self, job_id: str) -> list[ModelRecord]:
        return self.models_of([job_id]).get(job_id, [])

    def models_of(self, job_ids: Sequence[str]) -> dict[str, list[ModelRecord]]:
        """The models of several jobs in one query, each job's in spec order."""
        return {
            job_id: [
                ModelRecord(
                    r["position"],
                    r["model"],
                    r["phase"],
                    r["resolved_path"],
                    r["revision"],
                    r["fingerprint"],
                    json.loads(r["progress"]) if r["progress"] else None,
                )
                for r in sorted(rows, key=lambda r: r["position"])
            ]
            for job_id, rows in self._rows_by_job("job_models", job_ids).items()
        }

    def _rows_by_job(self, table: str, job_ids: Sequence[str]) -> dict[str, list[Row]]:
        """The rows of ``table`` of several jobs, in one query, grouped by job."""
        if not job_ids:
            return {}
        with self.db.read() as tx:
            rows = tx.all(f"SELECT * FROM {table} WHERE job_id IN ({placeholders(job_ids)})", job_ids)
        found: dict[str, list[Row]] = {}
        for row in rows:
            found.setdefault(row["job_id"], []).append(row)
        return found

    def set_model_resolved(
        self, job_id: str, position: int, *, path: str, revision: str | None, fingerprint: str
    ) -> None:
        with self.db.transaction() as tx:
            self._guard(tx, job_id, tx.now())
            tx.execute(
                "UPDATE job_models SET resolved_path = ?, revision = ?, fingerprint = ? WHERE job_id = ? AND position = ?",
                (path, revision, fingerprint, job_id, position),
            )

    def set_model_phase(self, job_id: str, position: int, phase: str, *, message: str | None = None) -> None:
        with self.db.transaction() as tx:
            now = tx.now()
            self._guard(tx, job_id, now)
            tx.execute("UPDATE job_models SET phase = ? WHERE job_id = ? AND position = ?", (phase, job_id, position))
            if message:
                insert_event(tx, job_id, "log", message, now)

    def set_model_progress(self, job_id: str, position: int, progress: dict[str, Any]) -> None:
        """Replace a running model's live progress (a JSON object; see service.runner.progress)."""
        with self.db.transaction() as tx:
            self._guard(tx, job_id, tx.now())
            tx.execute(
                "UPDATE job_models SET progress = ? WHERE job_id = ? AND position = ?",
                (json.dumps(progress), job_id, position),
            )

    # -- shards ------------------------------------------------------------------------------------
    def add_shards(self, job_id: str, shards: Iterable[tuple[ShardKey, int]]) -> None:
        """Record planned shards (and their request counts); already recorded ones are kept as they are."""
        with self.db.transaction() as tx:
            self._guard(tx, job_id, tx.now())
            tx.executemany(
                "INSERT INTO shards (job_id, model, benchmark, condition, phase, shard, requests) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(job_id, *key_tuple(k), n) for k, n in shards],
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
        """Commit a shard whose part is written (and end the job's crash streak): its requested and computed
        tokens (None: all computed) and its error rows."""
        with self.db.transaction() as tx:
            now = tx.now()
            self._guard(tx, job_id, now)
            tx.execute(
                "UPDATE shards SET state = 'done', path = ?, tokens = ?, computed_tokens = ?, errors = ?, "
                f"finished_at = ? WHERE {_SHARD_WHERE}",
                (
                    path,
                    tokens,
                    tokens if computed_tokens is None else computed_tokens,
                    errors,
                    now,
                    job_id,
                    *key_tuple(key),
                ),
            )
            tx.execute("UPDATE jobs SET crash_streak = 0 WHERE id = ? AND crash_streak != 0", (job_id,))

    def fail_shards(self, job_id: str, keys: Sequence[ShardKey]) -> None:
        with self.db.transaction() as tx:
            self._guard(tx, job_id, tx.now())
            tx.executemany(
                f"UPDATE shards SET state = 'failed' WHERE {_SHARD_WHERE} AND state != 'done'",
                [(job_id, *key_tuple(k)) for k in keys],
            )

    def shards(self, job_id: str) -> list[ShardRecord]:
        return self.shards_of([job_id]).get(job_id, [])

    def shards_of(self, job_ids: Sequence[str]) -> dict[str, list[ShardRecord]]:
        """The shards of several jobs in one query (a page of the job list), each job's in key order."""
        return {
            job_id: sorted((_shard(r) for r in rows), key=lambda s: s.key)
            for job_id, rows in self._rows_by_job("shards", job_ids).items()
        }

    def shard_totals(self) -> dict[str, int]:
        """Requests, requested and computed tokens and error rows of finished shards, by phase, over all jobs."""
        with self.db.read() as tx:
            rows = tx.all(
                "SELECT phase, SUM(requests) AS requests, SUM(tokens) AS tokens, SUM(computed_tokens) AS computed, "
                "SUM(errors) AS errors FROM shards WHERE state = 'done' GROUP BY phase"
            )
        totals = {"reason_requests": 0, "score_requests": 0, "tokens": 0, "computed_tokens": 0, "errors": 0}
        for row in rows:
            totals[f"{row['phase']}_requests"] = int(row["requests"] or 0)
            totals["tokens"] += int(row["tokens"] or 0)
            totals["computed_tokens"] += int(row["computed"] or 0)
            totals["errors"] += int(row["errors"] or 0)
        return totals


def _shard(row: Row) -> ShardRecord:
    key = ShardKey(row["model"], row["benchmark"], row["condition"], row["phase"], row["shard"])
    return ShardRecord(
        key,
        row["requests"],
        row["state"],
        row["path"],
        row["tokens"],
        row["finished_at"],
        row["computed_tokens"],
        row["errors"],
    )
