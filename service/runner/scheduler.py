"""The runner: claim jobs from the store, have them executed, keep their leases.

In a server, a dispatcher thread claims up to ``Settings.concurrency`` jobs (queued ones, and unfinished
ones whose runner died: see :mod:`service.store` on leases), hands them to the
:class:`~service.runner.executor.Executor` (a supervised child process, so that losing Ray pauses jobs
instead of killing the server) and renews their leases until they end. :meth:`Runner.stop` interrupts
running jobs and releases their leases, leaving them resumable. :meth:`Runner.run_job` runs one given job
in the calling thread (the CLI's local mode) with the same job code.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from schemas.jobs import JobState
from service.leases import forget_lease_owner, new_lease_owner
from service.runner.context import JobInterrupted
from service.runner.execute import JobExecution
from service.runner.executor import Executor
from service.settings import Settings
from service.store import JobStore

logger = logging.getLogger("moralscope.runner")

LEASE_TTL_SECONDS = 60.0
"""A job whose runner has not renewed its lease for this long is resumed by another runner."""


class Runner:
    """Executes jobs from a store in background threads."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        *,
        lease_ttl: float = LEASE_TTL_SECONDS,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.lease_ttl = lease_ttl
        self.poll_interval = poll_interval
        self.lease_owner = new_lease_owner()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._active: set[str] = set()
        self._lock = threading.Lock()
        self._dispatcher: threading.Thread | None = None
        self.executor: Executor | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start dispatching (and resume unfinished jobs of dead runners)."""
        self.executor = Executor(self.store, self.settings, on_ended=self._job_ended)
        self._dispatcher = threading.Thread(target=self._dispatch, name="moralscope-dispatcher", daemon=True)
        self._dispatcher.start()

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
        forget_lease_owner(self.lease_owner)

    # -- dispatching -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        renew_every = self.lease_ttl / 4
        since_renewal = 0.0
        while not self._stopping.is_set():
            try:
                self._fill_slots()
                if since_renewal >= renew_every:
                    self.store.renew_leases(lease_owner=self.lease_owner, ttl=self.lease_ttl)
                    since_renewal = 0.0
            except Exception:  # the dispatcher must outlive a locked or briefly unavailable store
                logger.exception("runner: dispatching failed; retrying")
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            since_renewal += self.poll_interval

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
            assert self.executor is not None
            self.executor.submit(job.id)

    def _job_ended(self, job_id: str) -> None:
        """The executor is done with a job (ended, interrupted, or failed by it): release its lease."""
        try:
            self.store.release(job_id, lease_owner=self.lease_owner)
        finally:
            with self._lock:
                self._active.discard(job_id)
            self._wake.set()

    def _execute(self, job_id: str, *, on_progress: Callable[[], None] | None) -> None:
        try:
            JobExecution(self.store, self.settings, self.store.get_job(job_id), should_stop=self._stopping.is_set).run(
                on_progress=on_progress
            )
        except JobInterrupted:
            logger.info("job %s interrupted by shutdown; it resumes when the service starts again", job_id)
        except Exception as exc:  # JobExecution records job failures itself; this is a bug in the runner
            logger.exception("runner: job %s crashed", job_id)
            # end it rather than leave it claimable: it would be picked up and crash again at once
            with contextlib.suppress(Exception):
                self.store.set_state(job_id, JobState.FAILED, error=f"internal error in the runner: {exc}")
        finally:
            self.store.release(job_id, lease_owner=self.lease_owner)

    # -- local mode --------------------------------------------------------------------------------
    def run_job(self, job_id: str, *, on_progress: Callable[[], None] | None = None) -> bool:
        """Run one job in the calling thread (renewing its lease meanwhile). False if another runner holds it."""
        if self.store.claim(lease_owner=self.lease_owner, ttl=self.lease_ttl, job_id=job_id) is None:
            return False
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(self.lease_ttl / 4):
                self.store.renew_leases(lease_owner=self.lease_owner, ttl=self.lease_ttl)

        beat = threading.Thread(target=heartbeat, name="moralscope-heartbeat", daemon=True)
        beat.start()
        try:
            self._execute(job_id, on_progress=on_progress)
        finally:
            done.set()
            beat.join()
        return True

    def interrupt(self) -> None:
        """Ask running jobs to stop (used on Ctrl-C in local mode); they stay resumable."""
        self._stopping.set()
