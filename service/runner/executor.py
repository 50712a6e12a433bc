"""Where a server runs its jobs: one supervised child process, so that losing Ray never kills the server.

Ray's driver cannot survive its cluster going away: while the GCS is unreachable its calls block, and after
``gcs_rpc_server_reconnect_timeout_s`` (60 s) Ray terminates the whole process ("Failed to connect to GCS
within 60 seconds ... The program will terminate"). A local Ray's daemons are started by the driver, so
when one of them dies the same happens. That is why the server process (the API, the job store, the
leases) never talks to Ray: it hands claimed jobs to an **executor** process
(:mod:`service.runner.executor_child`) that connects to Ray and runs them, and supervises it:

- the executor reports the GCS address it uses; :meth:`Executor.ray_status` probes it for ``/readyz``;
- when the executor exits because it lost Ray (:data:`EXIT_RAY_LOST`), its jobs are **paused**: they keep
  their state and their leases (no other replica takes them), an event says why, and a new executor is
  started once Ray can be reached again (a local Ray is simply started anew), which resumes them from
  their last committed shard;
- when it exits for any other reason (a crash, the OOM killer), it is restarted with backoff and its jobs
  resume; the death counts in each job's crash streak like a death of the service
  (:meth:`service.store.JobStore.count_crash`), so a job that keeps killing its executor without
  committing a shard is stopped as a crash loop (``MORALSCOPE_CRASH_LOOP_LIMIT``);
- :meth:`Executor.abandon` stops a job another runner has taken over; :meth:`Executor.stop` (the server's
  shutdown) interrupts the jobs, which stay resumable.

Messages on the pipe: to the executor ``("run", job_id, lease_epoch)``, ``("stop-job", job_id)`` and
``("stop",)``; from it ``("ready", address)``, ``("ended", job_id, outcome)``, ``("ray-lost", reason)`` and
``("stopped",)``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from service.runner.executor_child import EXIT_RAY_LOST, executor_main
from service.settings import Settings
from service.store import JobStore, LeaseLost

logger = logging.getLogger("moralscope.runner")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class _Job:
    job_id: str
    epoch: int
    """The lease epoch of this runner's claim: the executor's writes are fenced with it."""
    sent: bool = False


@dataclass
class RayStatus:
    """What the server knows about Ray, for ``/readyz``."""

    ok: bool
    detail: str
    address: str | None = None


@dataclass
class _State:
    process: Any = None
    conn: Connection | None = None
    address: str | None = None
    ready: bool = False
    lost: str | None = None
    """Why Ray or the executor went away (cleared when a new executor is ready)."""
    restarts: int = 0
    next_start: float = 0.0
    jobs: dict[str, _Job] = field(default_factory=dict)


class Executor:
    """Runs jobs in a supervised child process (see the module docstring)."""

    def __init__(self, store: JobStore, settings: Settings, *, on_ended: Callable[[str], None]) -> None:
        self.store = store
        self.settings = settings
        self.on_ended = on_ended
        self._lock = threading.Lock()
        self._state = _State()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the server's side -------------------------------------------------------------------------
    def submit(self, job_id: str, epoch: int) -> None:
        """Run a job claimed with lease ``epoch`` (its lease is the caller's to keep and release)."""
        with self._lock:
            self._state.jobs[job_id] = _Job(job_id, epoch)
        if self._thread is None:
            self._thread = threading.Thread(target=self._supervise, name="moralscope-executor", daemon=True)
            self._thread.start()

    def abandon(self, job_id: str) -> None:
        """Stop working on a job that another runner has taken over (its ``ended`` follows)."""
        with self._lock:
            conn = self._state.conn if self._state.ready else None
            known = job_id in self._state.jobs
        if conn is not None and known:
            with contextlib.suppress(OSError):
                conn.send(("stop-job", job_id))

    @property
    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    def ray_status(self) -> RayStatus:
        """Whether Ray is reachable for this server's jobs."""
        from service.runner.executor_child import _reachable

        with self._lock:
            state = self._state
            address, ready, lost, started = state.address, state.ready, state.lost, state.process is not None
        if lost is not None and not ready:
            return RayStatus(False, f"{lost}; running jobs are paused until it is back", address)
        if ready and address is not None:
            if _reachable(address):
                return RayStatus(
                    True,
                    f"connected ({'local Ray' if not self.settings.effective_ray_address else 'cluster'} at {address})",
                    address,
                )
            return RayStatus(False, f"Ray at {address} is unreachable; running jobs pause until it is back", address)
        if started:
            return RayStatus(True, "connecting (the job executor is starting)", address)
        return RayStatus(True, "not connected yet (connects when a job starts)", None)

    def stop(self, timeout: float = 60.0) -> None:
        """Interrupt the running jobs (they stay resumable) and end the executor."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout + 5)

    # -- supervision -------------------------------------------------------------------------------
    def _supervise(self) -> None:
        try:
            while not self._stopping.is_set():
                self._step()
        except Exception:
            logger.exception("executor supervisor failed")
        finally:
            self._shutdown()

    def _step(self) -> None:
        state = self._state
        if state.process is None:
            if state.jobs and time.monotonic() >= state.next_start and self._ray_may_be_back():
                self._start()
            else:
                self._stopping.wait(0.25)
            return
        conn = state.conn
        assert conn is not None
        try:
            if conn.poll(0.25):
                self._receive(conn.recv())
                return
        except (EOFError, OSError):
            pass
        if not state.process.is_alive():
            self._exited(state.process.exitcode)
            return
        with self._lock:
            unsent = [job for job in state.jobs.values() if not job.sent] if state.ready else []
        for job in unsent:
            job.sent = True
            conn.send(("run", job.job_id, job.epoch))

    def _ray_may_be_back(self) -> bool:
        """A cluster must answer before a new executor starts; a local Ray is started anew by it."""
        from service.runner.executor_child import _reachable

        address = self.settings.effective_ray_address
        if self._state.lost is None or not address or address == "auto":
            return True
        if _reachable(address):
            return True
        self._state.next_start = time.monotonic() + 2.0
        return False

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=executor_main, args=(self.settings, child, os.getpid()), name="moralscope-executor"
        )
        process.start()
        child.close()
        with self._lock:
            self._state.process, self._state.conn, self._state.ready = process, parent, False
            for job in self._state.jobs.values():
                job.sent = False
        logger.info("started the job executor (pid %s)", process.pid)

    def _receive(self, message: tuple[Any, ...]) -> None:
        state = self._state
        kind = message[0]
        if kind == "ready":
            with self._lock:
                resumed = state.lost is not None
                state.address, state.ready, state.lost, state.restarts = message[1], True, None, 0
                jobs = list(state.jobs)
            for job_id in jobs if resumed else []:
                self.store.add_event(job_id, "log", f"resumed: Ray is reachable again ({message[1]})")
        elif kind == "ended":
            with self._lock:
                state.jobs.pop(message[1], None)
            self.on_ended(message[1])
        elif kind == "ray-lost":
            with self._lock:
                state.lost, state.ready = str(message[1]), False

    def _exited(self, code: int | None) -> None:
        state = self._state
        ray_lost = code == EXIT_RAY_LOST
        with self._lock:
            reason = state.lost if ray_lost and state.lost else f"the job executor process died (exit status {code})"
            state.process, state.conn, state.ready, state.lost = None, None, False, reason
            state.next_start = time.monotonic() + RESTART_BACKOFF_S[min(state.restarts, len(RESTART_BACKOFF_S) - 1)]
            state.restarts += 1
            jobs = list(state.jobs.values())
        logger.warning("%s; its jobs are paused and resume in a new executor", reason)
        for job in jobs:
            message = f"paused: {reason}; it resumes " + ("once Ray is back" if ray_lost else "in a new executor")
            try:
                if ray_lost:
                    self.store.add_event(job.job_id, "log", message)
                else:  # like a death of the service: a job that keeps killing its executor is a crash loop
                    self.store.fenced(job.job_id, job.epoch).count_crash(job.job_id, message)
            except LeaseLost:
                with self._lock:
                    state.jobs.pop(job.job_id, None)
                self.on_ended(job.job_id)

    def _shutdown(self) -> None:
        state = self._state
        process, conn = state.process, state.conn
        if process is not None and conn is not None:
            self._stop_process(process, conn)
        with self._lock:
            jobs = list(state.jobs)
            state.jobs.clear()
            state.process = state.conn = None
        for job_id in jobs:
            self.on_ended(job_id)

    def _stop_process(self, process: Any, conn: Connection) -> None:
        try:
            conn.send(("stop",))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.is_alive():
                if conn.poll(0.25):
                    message = conn.recv()
                    if message[0] == "ended":
                        self._receive(message)
                    elif message[0] == "stopped":
                        break
        except (EOFError, OSError):
            pass
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join(10)
