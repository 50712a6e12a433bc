"""The runner's threads: claim jobs from the store, run each in its own thread, keep their leases.

A dispatcher thread fills up to ``Settings.concurrency`` job threads with claimed jobs (queued ones,
and unfinished ones whose runner died: see :mod:`service.store` on leases) and renews the leases of
the jobs it runs. :meth:`Runner.stop` asks running jobs to stop dispatching, waits for them and
releases their leases, leaving them resumable. :meth:`Runner.run_job` runs one given job in the
calling thread (the CLI's local mode) with the same code.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from schemas.jobs import JobState
from service.leases import forget_lease_owner, new_lease_owner
from service.runner.execute import JobExecution
from service.runner.context import JobInterrupted
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
        self._active: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._dispatcher: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start dispatching (and resume unfinished jobs of dead runners)."""
        self._dispatcher = threading.Thread(target=self._dispatch, name="moralscope-dispatcher", daemon=True)
        self._dispatcher.start()

    @property
    def alive(self) -> bool:
        return self._dispatcher is not None and self._dispatcher.is_alive()

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
        with self._lock:
            threads = list(self._active.values())
        for thread in threads:
            thread.join(timeout)
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
            thread = threading.Thread(target=self._run_claimed, args=(job.id,), name=f"job-{job.id}", daemon=True)
            with self._lock:
                self._active[job.id] = thread
            thread.start()

    def _run_claimed(self, job_id: str) -> None:
        try:
            self._execute(job_id, on_progress=None)
        finally:
            with self._lock:
                self._active.pop(job_id, None)
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
