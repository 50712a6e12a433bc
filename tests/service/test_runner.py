"""The runner in-process, for what needs no model: claiming, crash loops, validation failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from service_support import tiny_spec

from schemas.jobs import JobState
from schemas.spec import JobSpec
from service.runner.execute import JobExecution
from service.runner.scheduler import Runner
from service.settings import Settings
from service.store import JobStore, LeaseLost, new_lease_owner, open_store


def _store_with_job(settings: Settings, **overrides: object) -> tuple[JobStore, str]:
    store = open_store(settings)
    job, _ = store.create_job(
        owner="local", spec=JobSpec.model_validate(tiny_spec(**overrides)), results_root=settings.results_uri
    )
    return store, job.id


def test_a_job_that_keeps_killing_its_runner_is_failed(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(crash_loop_limit=2)
    store, job_id = _store_with_job(settings)
    store.set_state(job_id, JobState.IN_PROGRESS)
    with store.db.transaction() as tx:  # as if two runners had died in a row holding it
        tx.execute("UPDATE jobs SET crash_streak = 2 WHERE id = ?", (job_id,))
    assert Runner(store, settings).run_job(job_id)
    job = store.get_job(job_id)
    assert job.state == JobState.FAILED
    assert job.error is not None
    assert "the service died 2 times in a row while running this job, with no shard finished" in job.error
    assert "MORALSCOPE_CRASH_LOOP_LIMIT" in job.error
    assert [m.phase for m in store.models(job_id)] == ["failed"]
    assert job.lease_owner is None  # released


def test_a_missing_dataset_fails_the_job_at_validating(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    store, job_id = _store_with_job(settings, benchmarks={"bbq": {"categories": ["Race_x_gender"]}})
    assert Runner(store, settings).run_job(job_id)
    job = store.get_job(job_id)
    assert job.state == JobState.FAILED
    assert job.error is not None
    assert job.error.startswith("validation failed: dataset file bbq/data/Race_x_gender.jsonl not found")
    assert "moralscope data pull" in job.error  # says how to fix it
    assert [m.phase for m in store.models(job_id)] == ["failed"]
    states = [e.message for e in store.events(job_id) if e.type == "state"]
    assert states[:2] == ["queued", "validating: datasets and models"]


def test_finished_or_foreign_jobs_are_not_run(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    store, job_id = _store_with_job(settings)
    store.request_cancel(job_id)
    assert not Runner(store, settings).run_job(job_id)  # cancelled before it started: nothing to do
    other, _ = store.create_job(owner="local", spec=store.get_job(job_id).spec, results_root=settings.results_uri)
    holder = Runner(store, settings)
    assert store.claim(lease_owner=holder.lease_owner, ttl=60, job_id=other.id) is not None
    assert not Runner(store, settings).run_job(other.id)  # a live runner holds it


def test_a_runner_that_lost_its_lease_stops_without_touching_the_job(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    store, job_id = _store_with_job(settings)
    paused = store.claim(lease_owner=new_lease_owner(), ttl=60)
    assert paused is not None
    with store.db.transaction() as tx:  # its runner stalls past the lease ...
        tx.execute("UPDATE jobs SET lease_expires = 0 WHERE id = ?", (job_id,))
    taker = store.claim(lease_owner=new_lease_owner(), ttl=60)  # ... and another takes the job over
    assert taker is not None
    execution = JobExecution(store.fenced(job_id, paused.lease_epoch), settings, paused, should_stop=lambda: False)
    with pytest.raises(LeaseLost):
        execution.run()  # its first write is refused; it does not record a failure either
    job = store.get_job(job_id)
    assert (job.state, job.error, job.lease_owner) == (JobState.QUEUED, None, taker.lease_owner)
    assert not [e for e in store.events(job_id) if e.type == "state" and e.message != "queued"]
