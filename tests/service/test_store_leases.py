"""Leases on both backends: claiming each job once across replicas, takeover after expiry, fencing
epochs, crash streaks, and times from the database's clock."""

from __future__ import annotations

import threading
import time

import pytest

from schemas.jobs import JobState
from schemas.spec import JobSpec
from service.db import open_database
from service.store import JobStore, LeaseLost, ShardKey, new_lease_owner
from tests.support.postgres import PostgresServer

SPEC = JobSpec.model_validate({"models": [{"name": "smollm2-135m-instruct"}], "benchmarks": {"winogender": {}}})
SHORT = 0.3
"""A lease (seconds) the tests let expire."""


def _job(store: JobStore) -> str:
    return store.create_job(owner="alice", spec=SPEC, results_root="/r")[0].id


def _expire() -> None:
    time.sleep(SHORT + 0.1)


def test_a_claimed_job_is_taken_over_only_once_its_lease_expires(store: JobStore) -> None:
    job_id = _job(store)
    first, second = new_lease_owner(), new_lease_owner()
    claimed = store.claim(lease_owner=first, ttl=SHORT)
    assert claimed is not None
    assert (claimed.id, claimed.lease_owner, claimed.lease_epoch, claimed.crash_streak) == (job_id, first, 1, 0)
    assert store.claim(lease_owner=second, ttl=60) is None  # held
    store.set_state(job_id, JobState.IN_PROGRESS)
    _expire()
    resumed = store.claim(lease_owner=second, ttl=60)
    assert resumed is not None
    assert (resumed.id, resumed.state, resumed.lease_epoch) == (job_id, JobState.IN_PROGRESS, 2)
    assert (resumed.crash_resumes, resumed.crash_streak) == (1, 1)
    assert f"resumed in state in_progress after its runner died (its lease expired), by runner {second}" in [
        e.message for e in store.events(job_id)
    ]
    assert f"claimed by runner {first}" in [e.message for e in store.events(job_id)]
    store.release(job_id, lease_owner=first)  # not the holder: nothing happens
    assert store.get_job(job_id).lease_owner == second
    store.release(job_id, lease_owner=second)  # a graceful shutdown
    third = new_lease_owner()
    again = store.claim(lease_owner=third, ttl=60)
    assert again is not None
    assert (again.lease_epoch, again.crash_resumes, again.crash_streak) == (3, 1, 1)  # a clean restart is no death
    assert f"resumed in state in_progress after a restart, by runner {third}" in [
        e.message for e in store.events(job_id)
    ]


def test_a_runner_never_takes_over_its_own_lease(store: JobStore) -> None:
    _job(store)
    owner = new_lease_owner()
    assert store.claim(lease_owner=owner, ttl=SHORT) is not None
    _expire()
    assert store.claim(lease_owner=owner, ttl=60) is None  # it still runs the job in a thread
    assert store.claim(lease_owner=new_lease_owner(), ttl=60) is not None


def test_renewal_keeps_a_lease_and_reports_one_taken_over(store: JobStore) -> None:
    job_id = _job(store)
    first, second = new_lease_owner(), new_lease_owner()
    store.claim(lease_owner=first, ttl=SHORT)
    for _ in range(3):
        time.sleep(SHORT / 2)
        assert store.renew_leases(lease_owner=first, ttl=SHORT) == {job_id}
    assert store.claim(lease_owner=second, ttl=60) is None  # renewed: still held
    _expire()
    assert store.claim(lease_owner=second, ttl=60) is not None
    assert store.renew_leases(lease_owner=first, ttl=SHORT) == set()  # the first runner learns it lost it
    assert store.renew_leases(lease_owner=second, ttl=60) == {job_id}


def test_writes_of_an_older_epoch_are_refused(store: JobStore) -> None:
    job_id = _job(store)
    key = ShardKey(0, "winogender", "Q", "score", 0)
    paused = store.claim(lease_owner=new_lease_owner(), ttl=SHORT)
    assert paused is not None
    old = store.fenced(job_id, paused.lease_epoch)
    old.set_state(job_id, JobState.IN_PROGRESS)
    old.add_shards(job_id, [(key, 4)])
    _expire()  # the runner was paused past its lease ...
    taker = store.claim(lease_owner=new_lease_owner(), ttl=60)
    assert taker is not None
    new = store.fenced(job_id, taker.lease_epoch)
    refused = [
        lambda: old.finish_shard(job_id, key, path="parts/old.parquet", tokens=1),
        lambda: old.set_state(job_id, JobState.FAILED, error="from the past"),
        lambda: old.set_model_phase(job_id, 0, "done", message="old"),
        lambda: old.add_event(job_id, "log", "old"),
        lambda: old.fail_shards(job_id, [key]),
        lambda: old.set_provenance(job_id, {"old": True}),
    ]
    for write in refused:  # ... so none of its writes lands
        with pytest.raises(LeaseLost, match=f"job {job_id}: lease epoch {paused.lease_epoch}"):
            write()
    job = store.get_job(job_id)
    assert (job.state, job.error, job.provenance) == (JobState.IN_PROGRESS, None, None)
    assert [s.state for s in store.shards(job_id)] == ["pending"]
    assert [m.phase for m in store.models(job_id)] == ["pending"]
    assert "old" not in [e.message for e in store.events(job_id)]
    new.finish_shard(job_id, key, path="parts/new.parquet", tokens=2)  # the current holder's writes land
    new.set_state(job_id, JobState.FINALIZING)
    assert store.get_job(job_id).state == JobState.FINALIZING
    assert store.shards(job_id)[0].path == "parts/new.parquet"
    with pytest.raises(ValueError, match="cannot write job"):
        new.add_event(_job(store), "log", "another job")
    store.request_cancel(job_id)  # the API's writes are not fenced
    assert store.get_job(job_id).state == JobState.CANCELLING


def test_a_crash_streak_counts_deaths_since_the_last_commit(store: JobStore) -> None:
    job_id = _job(store)
    key = ShardKey(0, "winogender", "Q", "score", 0)
    streaks = []
    for death in range(5):
        job = store.claim(lease_owner=new_lease_owner(), ttl=SHORT)
        assert job is not None
        streaks.append(job.crash_streak)
        if death == 2:  # this life committed a shard before it died
            fenced = store.fenced(job_id, job.lease_epoch)
            fenced.add_shards(job_id, [(key, 1)])
            fenced.finish_shard(job_id, key, path="parts/0.parquet", tokens=1)
            assert store.get_job(job_id).crash_streak == 0
        _expire()
    assert streaks == [0, 1, 2, 1, 2]  # life 3 committed: its death starts a new streak
    assert store.get_job(job_id).crash_resumes == 4


def test_concurrent_replicas_claim_each_job_exactly_once(store_url: str) -> None:
    replicas = [JobStore(open_database(store_url)) for _ in range(3)]
    job_ids = {_job(replicas[0]) for _ in range(24)}
    claimed: list[tuple[int, str]] = []
    barrier = threading.Barrier(6)

    def runner(index: int) -> None:
        store, owner = replicas[index % 3], new_lease_owner()
        barrier.wait()
        while (job := store.claim(lease_owner=owner, ttl=60)) is not None:
            claimed.append((index, job.id))

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(job_id for _, job_id in claimed) == sorted(job_ids)  # every job, each once
    assert {replicas[0].get_job(job_id).lease_epoch for job_id in job_ids} == {1}
    for replica in replicas:
        replica.db.close()


def test_stored_times_come_from_the_database_clock(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # a replica whose clock is a day ahead must neither expire others' leases early nor stamp jobs wrongly
    store = JobStore(open_database(postgres.database()))
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86_400)
    job_id = _job(store)
    job = store.claim(lease_owner=new_lease_owner(), ttl=60)
    assert job is not None
    assert abs(job.created_at - real_time()) < 30
    assert job.lease_expires is not None
    assert abs(job.lease_expires - (real_time() + 60)) < 30
    assert store.claim(lease_owner=new_lease_owner(), ttl=60) is None  # not expired for the fast replica
    assert store.get_job(job_id).lease_epoch == 1
    store.db.close()
