"""A private one-node Ray cluster for live servers to share (``MORALSCOPE_RAY_ADDRESS``).

Servers started by a test then only connect to it instead of each starting a local Ray, which saves a
Ray start per server (and memory); the actors of a server that is killed go with its driver. The
cluster is ``ray start --head --block`` in a process group of its own, with its own temp dir, free
ports and a worker port range away from Ray's defaults; :meth:`RayHead.stop` ends that process group
only (never ``ray stop``, which would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.postgres import free_port

RAY_CLI = str(Path(sys.executable).with_name("ray"))


class RayHead:
    def __init__(self, *, num_cpus: int = 4) -> None:
        self.num_cpus = num_cpus
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = Path(tempfile.mkdtemp(prefix="msrh", dir="/tmp"))  # Ray's socket paths are length-limited
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> RayHead:
        worker_ports = random.randrange(40000, 49000, 100)
        command = [
            RAY_CLI, "start", "--head", f"--port={self.port}", f"--num-cpus={self.num_cpus}",
            f"--ray-client-server-port={free_port()}", f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--min-worker-port={worker_ports}",
            f"--max-worker-port={worker_ports + 99}", f"--object-store-memory={200 * 1024**2}",
            "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self.temp_dir}", "--block",
        ]  # fmt: skip
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)
        with (self.temp_dir / "head.out").open("wb") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the Ray head did not open its port within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return (self.temp_dir / "head.out").read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # `ray start` stops the node's processes
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            with contextlib.suppress(ProcessLookupError):  # whatever is left of the group
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayHead:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
