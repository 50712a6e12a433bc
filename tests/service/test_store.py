"""The job store on both backends (SQLite and a real PostgreSQL): migrations, idempotency, limits,
cancellation, shard bookkeeping, concurrent writers. Leases and fencing: test_store_leases.py."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import service.db.migrations
from schemas.errors import InvalidInputError, LimitExceededError, NotFoundError, UnavailableError
from schemas.jobs import JobState
from schemas.spec import JobSpec
from service.db import MIGRATIONS, SqliteDatabase, open_database
from service.store import JobStore, ShardKey, new_lease_owner
from tests.support.postgres import PostgresServer

SPEC = JobSpec.model_validate({"models": [{"name": "smollm2-135m-instruct"}], "benchmarks": {"winogender": {}}})
OTHER_SPEC = SPEC.model_copy(update={"seed": 1})


def _create(store: JobStore, spec: JobSpec = SPEC, **kwargs: object) -> str:
    job, created = store.create_job(owner="alice", spec=spec, results_root="/results", **kwargs)  # type: ignore[arg-type]
    assert created
    return job.id


def test_migrations_are_versioned_and_reopening_keeps_data(store_url: str) -> None:
    db = open_database(store_url)
    assert db.schema_version() == len(MIGRATIONS)
    job_id = _create(JobStore(db))
    db.close()
    reopened = open_database(store_url)
    assert reopened.schema_version() == len(MIGRATIONS)
    assert JobStore(reopened).get_job(job_id).spec == SPEC
    reopened.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "jobs.sqlite3")
    assert db.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_an_old_store_is_migrated_in_place(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service.db.migrations, "MIGRATIONS", MIGRATIONS[:1])
    old = open_database(store_url)
    assert old.schema_version() == 1
    with old.transaction() as tx:
        tx.execute(
            "INSERT INTO jobs (id, owner, spec, spec_sha256, state, created_at, updated_at, location) "
            "VALUES ('job_old', 'alice', ?, 'x', 'queued', 0, 0, '/r/job_old')",
            (SPEC.model_dump_json(),),
        )
    old.close()
    monkeypatch.setattr(service.db.migrations, "MIGRATIONS", MIGRATIONS)
    migrated = open_database(store_url)
    assert migrated.schema_version() == len(MIGRATIONS)
    job = JobStore(migrated).get_job("job_old")
    assert job.spec == SPEC
    assert (job.crash_resumes, job.lease_epoch, job.crash_streak) == (0, 0, 0)
    migrated.close()


def test_a_store_from_a_newer_version_is_refused(store_url: str) -> None:
    db = open_database(store_url)
    with db.transaction() as tx:
        tx.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    db.close()
    with pytest.raises(UnavailableError, match="newer than this moralscope"):
        open_database(store_url)


def test_postgres_stores_times_as_double_precision(postgres: PostgresServer) -> None:
    # a migration that writes REAL instead of {real} would store timestamps in 4 bytes (minutes apart)
    db = open_database(postgres.database())
    with db.read() as tx:
        columns = tx.all(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"
        )
    db.close()
    assert not [c for c in columns if c["data_type"] == "real"]
    assert {c["column_name"]: c["data_type"] for c in columns if c["table_name"] == "jobs"}["lease_expires"] == (
        "double precision"
    )


def test_bad_store_urls_are_refused_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="MORALSCOPE_STORE_URL"):
        open_database("mysql://localhost/jobs")
    with pytest.raises(InvalidInputError, match="sqlite:///absolute/path"):
        open_database("sqlite://relative.db")
    with pytest.raises(
        UnavailableError, match=r"cannot connect to the job store postgresql://u:\*\*\*@127\.0\.0\.1:1/x"
    ):
        open_database("postgresql://u:secret@127.0.0.1:1/x")


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


def _concurrently(count: int, work: object) -> tuple[list[object], list[BaseException]]:
    results: list[object] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results.append(work(index))  # type: ignore[operator]
        except BaseException as exc:  # collected and asserted by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_idempotency_and_limits_hold_across_replicas(store_url: str) -> None:
    # two stores on one database are two replicas: submissions racing through both must still create
    # one job per idempotency key and never exceed the owner's limit
    replicas = [JobStore(open_database(store_url)) for _ in range(2)]
    created, errors = _concurrently(
        8,
        lambda i: replicas[i % 2].create_job(owner="alice", spec=SPEC, results_root="/r", idempotency_key="same"),
    )
    assert not errors
    assert len({job.id for job, _ in created}) == 1  # type: ignore[attr-defined]
    assert sum(was_created for _, was_created in created) == 1  # type: ignore[attr-defined]
    accepted, refused = _concurrently(
        10, lambda i: replicas[i % 2].create_job(owner="bob", spec=SPEC, results_root="/r", max_unfinished=3)
    )
    assert len(accepted) == 3
    assert len(refused) == 7
    assert all(isinstance(exc, LimitExceededError) for exc in refused)
    assert replicas[0].list_jobs(owner="bob")[1] == 3
    for replica in replicas:
        replica.db.close()


def test_cancel_queued_ends_at_once_running_goes_cancelling(store: JobStore) -> None:
    queued = _create(store)
    assert store.request_cancel(queued).state == JobState.CANCELLED
    running = _create(store)
    claimed = store.claim(lease_owner=new_lease_owner(), ttl=60)
    assert claimed is not None
    assert claimed.id == running
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
    assert store.jobs_by_state()["queued"] == 1


def test_concurrent_writers_from_many_threads(store: JobStore) -> None:
    def submit(_: int) -> None:
        for _ in range(10):
            store.create_job(owner="alice", spec=SPEC, results_root="/r")

    _, errors = _concurrently(4, submit)
    assert not errors
    assert store.list_jobs(owner="alice")[1] == 40
