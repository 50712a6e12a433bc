"""The runner: claim jobs from the store, have them executed, keep their leases.

In a server, a dispatcher thread claims up to ``Settings.concurrency`` jobs (queued ones, and unfinished
ones whose runner died: see :mod:`service.store.claims` on leases) and hands them to the
:class:`~service.runner.executor.Executor`, a supervised child process that runs them (so that losing Ray
pauses jobs instead of killing the server). A heartbeat thread of its own renews the leases of the jobs
it holds every quarter of ``Settings.lease_ttl_seconds`` (apart from the dispatcher, so that slow claims
never delay a renewal). Each job runs on a store fenced with the epoch of its claim: once another runner
has taken the job over (this one was paused past its lease), its writes are refused with
:class:`~service.store.LeaseLost` and the job stops quietly, like on a shutdown; a renewal that finds a
lease gone stops it early. :meth:`Runner.stop` interrupts running jobs and releases their leases, leaving
them resumable. :meth:`Runner.run_job` runs one given job in the calling thread (the CLI's local mode)
with the same job code.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from schemas.jobs import JobState
from service.runner.context import JobInterrupted
from service.runner.execute import JobExecution
from service.runner.executor import Executor
from service.settings import Settings
from service.store import JobRecord, JobStore, LeaseLost, new_lease_owner

logger = logging.getLogger("moralscope.runner")


class Runner:
    """Executes jobs from a store: through an executor process (a server) or in the calling thread."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        *,
        lease_ttl: float | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.lease_ttl = lease_ttl if lease_ttl is not None else settings.lease_ttl_seconds
        self.poll_interval = poll_interval
        self.lease_owner = new_lease_owner()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._active: set[str] = set()
        self._lost: set[str] = set()
        """Jobs of ours that another runner has taken over (found by a renewal): they stop."""
        self._lock = threading.Lock()
        self._dispatcher: threading.Thread | None = None
        self._heartbeat_done = threading.Event()
        self.executor: Executor | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start dispatching (and resume unfinished jobs of dead runners)."""
        self.executor = Executor(self.store, self.settings, on_ended=self._job_ended)
        self._dispatcher = threading.Thread(target=self._dispatch, name="moralscope-dispatcher", daemon=True)
        self._dispatcher.start()
        threading.Thread(target=self._heartbeat, name="moralscope-heartbeat", daemon=True).start()

    @property
    def alive(self) -> bool:
        dispatching = self._dispatcher is not None and self._dispatcher.is_alive()
        return dispatching and (self.executor is None or self.executor.alive)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wake(self) -> None:
        """Look for work now (a job was submitted or cancelled)."""
        self._wake.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop dispatching, interrupt running jobs (they stay resumable) and release their leases."""
        self._stopping.set()
        self._wake.set()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
        if self.executor is not None:
            self.executor.stop(timeout)
        self._heartbeat_done.set()  # only now: the jobs' leases are released, none is left to renew

    # -- dispatching -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            try:
                self._fill_slots()
            except Exception:  # the dispatcher must outlive a locked or briefly unavailable store
                logger.exception("runner: dispatching failed; retrying")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _heartbeat(self) -> None:
        """Renew this runner's leases every quarter of their lifetime until the runner has stopped."""
        while not self._heartbeat_done.wait(self.lease_ttl / 4):
            try:
                self._renew()
            except Exception:  # a briefly unavailable store: three more tries before the leases expire
                logger.warning("runner: renewing leases failed; retrying", exc_info=True)

    def _renew(self) -> None:
        with self._lock:  # jobs claimed before the renewal: a job claimed meanwhile is not lost
            running = set(self._active)
        held = self.store.renew_leases(lease_owner=self.lease_owner, ttl=self.lease_ttl)
        with self._lock:
            lost = (running & self._active) - held
            fresh = lost - self._lost
            self._lost |= lost
        for job_id in fresh:
            logger.warning("job %s was taken over by another runner (this one missed its lease); stopping it", job_id)
            if self.executor is not None:
                self.executor.abandon(job_id)

    def _fill_slots(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if len(self._active) >= self.settings.concurrency:
                    return
            job = self.store.claim(lease_owner=self.lease_owner, ttl=self.lease_ttl)
            if job is None:
                return
            with self._lock:
                self._active.add(job.id)
                self._lost.discard(job.id)
            assert self.executor is not None
            self.executor.submit(job.id, job.lease_epoch)

    def _job_ended(self, job_id: str) -> None:
        """The executor is done with a job (ended, interrupted, or taken over): release its lease."""
        try:
            self.store.release(job_id, lease_owner=self.lease_owner)
        finally:
            with self._lock:
                self._active.discard(job_id)
            self._wake.set()

    # -- local mode --------------------------------------------------------------------------------
    def run_job(self, job_id: str, *, on_progress: Callable[[], None] | None = None) -> bool:
        """Run one job in the calling thread (renewing its lease meanwhile). False if another runner holds it."""
        job = self.store.claim(lease_owner=self.lease_owner, ttl=self.lease_ttl, job_id=job_id)
        if job is None:
            return False
        with self._lock:
            self._active.add(job_id)
            self._lost.discard(job_id)
        self._heartbeat_done.clear()
        beat = threading.Thread(target=self._heartbeat, name="moralscope-heartbeat", daemon=True)
        beat.start()
        try:
            run_fenced(
                self.store,
                self.settings,
                job,
                should_stop=lambda: self._stopping.is_set() or job.id in self._lost,
                on_progress=on_progress,
            )
        finally:
            self.store.release(job.id, lease_owner=self.lease_owner)
            self._heartbeat_done.set()
            beat.join()
            with self._lock:
                self._active.discard(job_id)
        return True

    def interrupt(self) -> None:
        """Ask running jobs to stop (used on Ctrl-C in local mode); they stay resumable."""
        self._stopping.set()


def run_fenced(
    store: JobStore,
    settings: Settings,
    job: JobRecord,
    *,
    should_stop: Callable[[], bool],
    on_progress: Callable[[], None] | None = None,
) -> str:
    """Run a claimed job on a store fenced with its claim's epoch; how it ended: ``ended`` (a terminal state),
    ``interrupted`` (shutdown: resumable) or ``lost`` (another runner took it over)."""
    fenced = store.fenced(job.id, job.lease_epoch)  # writes of an older claim are refused
    try:
        JobExecution(fenced, settings, job, should_stop=should_stop).run(on_progress=on_progress)
    except LeaseLost:
        logger.info("job %s: another runner took it over; this one stops working on it", job.id)
        return "lost"
    except JobInterrupted:
        logger.info("job %s interrupted; it resumes when the service runs it again", job.id)
        return "interrupted"
    except Exception as exc:  # JobExecution records job failures itself; this is a bug in the runner
        logger.exception("runner: job %s crashed", job.id)
        # end it rather than leave it claimable: it would be picked up and crash again at once
        with contextlib.suppress(Exception):
            fenced.set_state(job.id, JobState.FAILED, error=f"internal error in the runner: {exc}")
    return "ended"
