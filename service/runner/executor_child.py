"""The executor process: where a server's jobs run and talk to Ray (see :mod:`service.runner.executor`).

It connects to Ray (starting a private local Ray when no cluster is configured: its daemons live and die
with this process), reports the GCS address it uses, then runs each job it is sent in a thread with the
same code as local mode (:class:`service.runner.execute.JobExecution`). A watchdog thread probes Ray every
second; once Ray has been unreachable for a grace period (a local Ray at once, since its daemons never
come back; a cluster after ``CLUSTER_GRACE_S``, so a head restarting with GCS fault tolerance can
return), the process reports it and exits with :data:`EXIT_RAY_LOST`. Exiting is the only clean way out:
Ray's driver blocks its calls while the GCS is gone and terminates the process itself after
``gcs_rpc_server_reconnect_timeout_s`` (60 s), which is why none of this runs in the server process.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from service.settings import Settings

EXIT_RAY_LOST = 75
"""Exit status of an executor that lost Ray (a pause, not a crash)."""
LOCAL_GRACE_S = 3.0
CLUSTER_GRACE_S = 20.0
_PR_SET_PDEATHSIG = 1

logger = logging.getLogger("moralscope.executor")


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill this process when the thread that started it exits (Linux), and make sure
    the parent did not exit before that request took effect."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    host = host.split("://")[-1]
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def _local_daemons_dead() -> str | None:
    """A dead daemon of the local Ray this process started (None when all live, or Ray is not local)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return None
    try:
        dead = node.dead_processes()
    except Exception:
        return None
    return ", ".join(name for name, _ in dead) or None


class _Channel:
    """The connection to the server, safe to send on from several threads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, *message: Any) -> None:
        with self.lock, contextlib.suppress(OSError):
            self.conn.send(message)


def _watch_ray(address: str, local: bool, channel: _Channel, stopping: threading.Event) -> None:
    grace = LOCAL_GRACE_S if local else CLUSTER_GRACE_S
    failing_since: float | None = None
    while not stopping.wait(1.0):
        dead = _local_daemons_dead() if local else None
        if _reachable(address) and dead is None:
            failing_since = None
            continue
        failing_since = failing_since or time.monotonic()
        if time.monotonic() - failing_since >= grace:
            reason = f"the local Ray's {dead} stopped" if dead else f"Ray at {address} is unreachable"
            logger.error("%s; the executor exits so that its jobs pause until Ray is back", reason)
            channel.send("ray-lost", reason)
            os._exit(EXIT_RAY_LOST)


def _preload() -> None:
    """Warm up what validating a job imports, so that a job resumed in a fresh executor starts sooner."""
    try:
        from workers.rendering import preload_tokenizers

        preload_tokenizers()
    except Exception:  # only an optimisation: the job imports it again and reports a real failure
        logger.debug("executor: preloading transformers failed", exc_info=True)


def executor_main(settings: Settings, conn: Connection, parent_pid: int) -> None:
    """Entry point of the executor process (multiprocessing, spawn)."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which stops us in order
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("moralscope").setLevel(settings.log_level.upper())
    channel = _Channel(conn)
    from schemas.errors import UnavailableError
    from service.runner.scheduler import run_fenced
    from service.store import open_store
    from workers.cluster import ensure_ray

    threading.Thread(target=_preload, name="preload", daemon=True).start()

    try:
        ensure_ray(settings.effective_ray_address, num_cpus=settings.ray_num_cpus)
    except UnavailableError as exc:
        channel.send("ray-lost", exc.message)
        os._exit(EXIT_RAY_LOST)
    import ray

    local = not settings.effective_ray_address
    address = str(ray.get_runtime_context().gcs_address) if local else str(settings.effective_ray_address)
    stopping = threading.Event()
    watchdog = threading.Thread(target=_watch_ray, args=(address, local, channel, stopping), name="ray-watchdog")
    watchdog.daemon = True
    watchdog.start()
    store = open_store(settings)
    jobs: dict[str, tuple[threading.Thread, threading.Event]] = {}

    def run(job_id: str, epoch: int, stop: threading.Event) -> None:
        outcome = "ended"
        try:
            job = store.get_job(job_id)
            if not job.state.is_terminal:  # it may have ended just before a previous executor died
                # the server's claim: a takeover since then makes every write of this job fail (fencing)
                claimed = dataclasses.replace(job, lease_epoch=epoch)
                outcome = run_fenced(store, settings, claimed, should_stop=lambda: stopping.is_set() or stop.is_set())
        except Exception:  # run_fenced records job failures itself; this is a bug
            logger.exception("executor: job %s crashed", job_id)
        channel.send("ended", job_id, outcome)

    channel.send("ready", address)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server is gone
            os._exit(1)
        if message[0] == "run":
            job_id, epoch, stop = message[1], message[2], threading.Event()
            thread = threading.Thread(target=run, args=(job_id, epoch, stop), name=f"job-{job_id}", daemon=True)
            jobs[job_id] = (thread, stop)
            thread.start()
        elif message[0] == "stop-job" and message[1] in jobs:
            jobs[message[1]][1].set()
        elif message[0] == "stop":
            stopping.set()
            for thread, _ in jobs.values():
                thread.join()
            channel.send("stopped")
            store.db.close()
            return
