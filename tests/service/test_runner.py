"""The runner in-process, for what needs no model: claiming, crash loops, validation failures."""

from __future__ import annotations

from collections.abc import Callable

from service_support import tiny_spec

from schemas.jobs import JobState
from schemas.spec import JobSpec
from service.db import Database
from service.runner.execute import MAX_CRASH_RESUMES
from service.runner.scheduler import Runner
from service.settings import Settings
from service.store import JobStore


def _store_with_job(settings: Settings, **overrides: object) -> tuple[JobStore, str]:
    store = JobStore(Database(settings.store_path))
    job, _ = store.create_job(
        owner="local", spec=JobSpec.model_validate(tiny_spec(**overrides)), results_root=settings.results_uri
    )
    return store, job.id


def test_a_job_that_keeps_killing_its_runner_is_failed(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    store, job_id = _store_with_job(settings)
    store.set_state(job_id, JobState.IN_PROGRESS)
    store.db.connection().execute("UPDATE jobs SET crash_resumes = ? WHERE id = ?", (MAX_CRASH_RESUMES + 1, job_id))
    assert Runner(store, settings).run_job(job_id)
    job = store.get_job(job_id)
    assert job.state == JobState.FAILED
    assert job.error is not None
    assert "the service died 4 times while running this job" in job.error
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
