"""Local mode: run one job in this process with the service's own runner (``moralscope run``).

The job is stored in the same job store as the server's (so ``moralscope list`` and the API see it).
Running the same spec into the same output again resumes the unfinished job from its last finished
shard; once that job has ended, the same command starts a new one.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from schemas.errors import UnavailableError
from schemas.jobs import JobView
from schemas.spec import JobSpec
from service.admission import admit_job
from service.auth import LOCAL_OWNER
from service.results import normalize_results_root
from service.runner.scheduler import Runner
from service.settings import Settings
from service.store import JobRecord, JobStore, open_store, spec_digest
from service.views import job_view


@dataclass
class LocalRun:
    """A job being run in this process."""

    store: JobStore
    runner: Runner
    job: JobRecord
    resumed: bool

    def view(self) -> JobView:
        return job_view(self.store, self.store.get_job(self.job.id), include_spec=False)


def open_local_run(spec: JobSpec, *, settings: Settings, out: str | None = None) -> LocalRun:
    """Store the job (or find the unfinished one to resume) and prepare a runner for it.

    The spec is the user's own, run on the user's machine: every local path and URI it names may be read
    (``Settings.unrestricted_paths``).
    """
    settings = settings.model_copy(update={"unrestricted_paths": True})
    spec = admit_job(spec, settings=settings, owner=LOCAL_OWNER)
    store = open_store(settings)
    location = normalize_results_root(out) if out else None
    key = "run:" + hashlib.sha256(f"{spec_digest(spec)}|{location or ''}".encode()).hexdigest()[:32]
    previous = store.find_by_idempotency_key(owner=LOCAL_OWNER, idempotency_key=key)
    if previous is not None and previous.state.is_terminal:
        store.forget_idempotency_key(previous.id)
    job, created = store.create_job(
        owner=LOCAL_OWNER,
        spec=spec,
        results_root=normalize_results_root(settings.results_uri),
        idempotency_key=key,
        location=location,
    )
    return LocalRun(store, Runner(store, settings), job, resumed=not created)


def execute_local_run(run: LocalRun, *, on_progress: Callable[[], None] | None = None) -> JobView:
    """Run the job to its end in a worker thread; Ctrl-C interrupts it (resumable) and re-raises."""
    outcome: dict[str, bool] = {}

    def work() -> None:
        outcome["claimed"] = run.runner.run_job(run.job.id, on_progress=on_progress)

    thread = threading.Thread(target=work, name=f"job-{run.job.id}", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        run.runner.interrupt()
        thread.join()
        raise
    finally:
        run.runner.stop(timeout=0)
    if not outcome.get("claimed", False):
        job = run.store.get_job(run.job.id)
        if job.state.is_terminal:
            return run.view()
        raise UnavailableError(
            f"job {run.job.id} is being run by another process (a server or another `moralscope run`): follow "
            "it with `moralscope status`. If that process was killed, the job can be resumed once its lease "
            f"expires (at most MORALSCOPE_LEASE_TTL_SECONDS={run.runner.lease_ttl:g} s after it died): run "
            "the same command again then"
        )
    return run.view()
