"""The SQLite job store: migrations, idempotency, limits, leases, cancellation, shard bookkeeping."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from schemas.errors import InvalidInputError, LimitExceededError, NotFoundError, UnavailableError
from schemas.jobs import JobState
from schemas.spec import JobSpec
from service.db import MIGRATIONS, Database
from service.leases import forget_lease_owner, lease_is_stale, new_lease_owner
from service.store import JobStore, ShardKey

SPEC = JobSpec.model_validate({"models": [{"name": "smollm2-135m-instruct"}], "benchmarks": {"winogender": {}}})
OTHER_SPEC = SPEC.model_copy(update={"seed": 1})


def _create(store: JobStore, spec: JobSpec = SPEC, **kwargs: object) -> str:
    job, created = store.create_job(owner="alice", spec=spec, results_root="/results", **kwargs)  # type: ignore[arg-type]
    assert created
    return job.id


def test_migrations_are_versioned_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    db = Database(path)
    assert db.schema_version() == len(MIGRATIONS)
    job_id = _create(JobStore(db))
    db.close()
    reopened = Database(path)
    assert reopened.schema_version() == len(MIGRATIONS)
    assert JobStore(reopened).get_job(job_id).spec == SPEC
    assert reopened.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened.close()


def test_an_old_store_is_migrated_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import service.db

    path = tmp_path / "jobs.sqlite3"
    monkeypatch.setattr(service.db, "MIGRATIONS", MIGRATIONS[:1])
    old = Database(path)
    assert old.schema_version() == 1
    old.connection().execute(
        "INSERT INTO jobs (id, owner, spec, spec_sha256, state, created_at, updated_at, location) "
        "VALUES ('job_old', 'alice', ?, 'x', 'queued', 0, 0, '/r/job_old')",
        (SPEC.model_dump_json(),),
    )
    old.close()
    monkeypatch.setattr(service.db, "MIGRATIONS", MIGRATIONS)
    migrated = Database(path)
    assert migrated.schema_version() == len(MIGRATIONS)
    job = JobStore(migrated).get_job("job_old")
    assert job.spec == SPEC
    assert job.crash_resumes == 0
    migrated.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    Database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    with pytest.raises(UnavailableError, match="newer than this moralscope"):
        Database(path)


def test_create_get_list_with_owner_isolation(store: JobStore) -> None:
    first = _create(store)
    second = _create(store, OTHER_SPEC)
    job = store.get_job(first, owner="alice")
    assert job.state == JobState.QUEUED
    assert job.location == f"/results/{first}"
    assert [m.model for m in store.models(first)] == ["smollm2-135m-instruct"]
    with pytest.raises(NotFoundError):
        store.get_job(first, owner="bob")
    jobs, count = store.list_jobs(owner="alice", limit=1)
    assert count == 2
    assert [j.id for j in jobs] == [second]  # newest first
    assert store.list_jobs(owner="alice", limit=1, offset=1)[0][0].id == first
    assert store.list_jobs(owner="bob")[1] == 0
    assert store.list_jobs(owner="alice", state=JobState.FAILED)[1] == 0


def test_idempotency_key_returns_the_same_job_and_rejects_another_spec(store: JobStore) -> None:
    job, created = store.create_job(owner="alice", spec=SPEC, results_root="/r", idempotency_key="k")
    again, created_again = store.create_job(owner="alice", spec=SPEC, results_root="/r", idempotency_key="k")
    assert created
    assert not created_again
    assert again.id == job.id
    other_owner, created_other = store.create_job(owner="bob", spec=SPEC, results_root="/r", idempotency_key="k")
    assert created_other
    assert other_owner.id != job.id
    with pytest.raises(InvalidInputError, match="different spec") as excinfo:
        store.create_job(owner="alice", spec=OTHER_SPEC, results_root="/r", idempotency_key="k")
    assert excinfo.value.field == "Idempotency-Key"


def test_unfinished_jobs_per_owner_are_limited(store: JobStore) -> None:
    for _ in range(2):
        store.create_job(owner="alice", spec=SPEC, results_root="/r", max_unfinished=2)
    with pytest.raises(LimitExceededError, match="2 unfinished jobs") as excinfo:
        store.create_job(owner="alice", spec=SPEC, results_root="/r", max_unfinished=2)
    assert excinfo.value.http_status == 429
    store.create_job(owner="bob", spec=SPEC, results_root="/r", max_unfinished=2)  # per owner
    jobs, _ = store.list_jobs(owner="alice")
    store.request_cancel(jobs[0].id)
    store.create_job(owner="alice", spec=SPEC, results_root="/r", max_unfinished=2)  # a finished one frees a slot


def test_cancel_queued_ends_at_once_running_goes_cancelling(store: JobStore) -> None:
    queued = _create(store)
    assert store.request_cancel(queued).state == JobState.CANCELLED
    running = _create(store)
    owner = new_lease_owner()
    assert store.claim(lease_owner=owner, ttl=60).id == running
    store.set_state(running, JobState.IN_PROGRESS)
    job = store.request_cancel(running)
    assert job.state == JobState.CANCELLING
    assert job.cancel_requested
    store.set_state(running, JobState.FINALIZING)  # a running phase never hides the cancellation
    assert store.get_job(running).state == JobState.CANCELLING
    store.set_state(running, JobState.CANCELLED)
    assert store.get_job(running).state == JobState.CANCELLED
    assert store.request_cancel(running).state == JobState.CANCELLED  # finished: unchanged
    store.set_state(running, JobState.FAILED, error="late")
    assert store.get_job(running).state == JobState.CANCELLED  # terminal states never change
    assert [e.message for e in store.events(running) if e.type == "state"][-1].startswith("cancelled")
    forget_lease_owner(owner)


def test_claim_takes_queued_jobs_once_and_resumes_jobs_of_dead_runners(store: JobStore) -> None:
    job_id = _create(store)
    live = new_lease_owner()
    assert store.claim(lease_owner=live, ttl=60).id == job_id
    assert store.claim(lease_owner=new_lease_owner(), ttl=60) is None  # held by a live runner
    store.set_state(job_id, JobState.IN_PROGRESS)
    forget_lease_owner(live)  # this runner is gone (same pid: a restarted container)
    second = new_lease_owner()
    resumed = store.claim(lease_owner=second, ttl=60)
    assert resumed is not None
    assert resumed.id == job_id
    assert resumed.state == JobState.IN_PROGRESS
    assert resumed.crash_resumes == 1
    assert "resumed in state in_progress after its runner died" in [e.message for e in store.events(job_id)]
    store.release(job_id, lease_owner=second)  # a graceful shutdown
    again = store.claim(lease_owner=new_lease_owner(), ttl=60)
    assert again is not None
    assert again.crash_resumes == 1  # a clean restart is not a crash


def test_a_lease_held_by_a_dead_process_is_stale() -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)
    host = socket.gethostname()
    assert lease_is_stale(f"{host}:{dead_pid}:abc", 1e18, now=0)
    assert not lease_is_stale(f"{host}:{os.getppid()}:abc", 1e18, now=0)  # a live process
    assert not lease_is_stale(f"other-host:{dead_pid}:abc", 1e18, now=0)  # unknown host: trust the expiry
    assert lease_is_stale(f"other-host:{dead_pid}:abc", 10, now=11)  # expired


def test_shards_are_recorded_once_and_count_progress(store: JobStore) -> None:
    job_id = _create(store)
    keys = [ShardKey(0, "winogender", "Q", "score", i) for i in range(3)]
    store.add_shards(job_id, [(k, 5) for k in keys])
    store.finish_shard(job_id, keys[1], path="parts/1.parquet", tokens=42, computed_tokens=30, errors=1)
    store.add_shards(job_id, [(k, 5) for k in keys])  # planning again keeps what is done
    shards = store.shards(job_id)
    assert [s.state for s in shards] == ["pending", "done", "pending"]
    assert (shards[1].tokens, shards[1].computed_tokens, shards[1].errors) == (42, 30, 1)
    assert shards[1].path == "parts/1.parquet"
    store.fail_shards(job_id, keys)
    assert [s.state for s in store.shards(job_id)] == ["failed", "done", "failed"]
    assert store.shard_totals() == {
        "reason_requests": 0,
        "score_requests": 5,
        "tokens": 42,
        "computed_tokens": 30,
        "errors": 1,
    }


def test_concurrent_writers_from_many_threads(store: JobStore) -> None:
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            for _ in range(10):
                store.create_job(owner="alice", spec=SPEC, results_root="/r")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert store.list_jobs(owner="alice")[1] == 40
