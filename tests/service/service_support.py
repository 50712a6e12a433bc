"""Helpers shared by the service tests: tiny job specs, a live uvicorn server, polling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """All three benchmarks and all four built-in conditions on a handful of items (CoT: 16 tokens)."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "seed": 7,
        "models": [{"name": MODEL, "engine": "hf", "alias": "smol", "labels": {"params_b": 0.135}}],
        "benchmarks": {
            "bbq": {"categories": ["Age", "Religion"], "limit": 1},
            "winogender": {"limit": 2},
            "lawschool": {"limit": 1},
        },
        "conditions": ["Q", "Q+IF", "Q+IF+CoT", "Q+MatchStats"],
        "cot": {"max_new_tokens": 16},
        "bootstrap": {"resamples": 20},
        "shard_size": 2,
    }
    spec.update(overrides)
    return spec


def server_env(state: Path, **variables: str) -> dict[str, str]:
    """The environment of a live test server whose store and results live in ``state``, plus ``variables``."""
    return {
        "MORALSCOPE_STORE_PATH": str(state / "jobs.sqlite3"),
        "MORALSCOPE_RESULTS_URI": str(state / "results"),
        "MORALSCOPE_DOWNLOAD": "false",
        "MORALSCOPE_RAY_NUM_CPUS": "2",
        **variables,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """`moralscope serve` in a subprocess (its own process group, so its Ray processes die with it)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moralscope.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the server did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL the server, then its process group (the Ray processes it started)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self._kill_group()

    def stop(self) -> bool:
        """SIGTERM (graceful shutdown), then clean up the process group; False if it had to be killed."""
        graceful = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                graceful = False
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(30)
        self._kill_group()
        return graceful

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def wait_until(condition: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def descendants(pid: int) -> list[tuple[int, str]]:
    """Processes started (directly or not) by ``pid``, as (pid, command line); read from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, of in parents.items() if of == parent]
        frontier += children
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found.append((child, command.strip()))
    return found


def kill_descendants(pid: int, marker: str, *, limit: int | None = None) -> list[int]:
    """SIGKILL the processes under ``pid`` whose command line contains ``marker``; their pids."""
    victims = [child for child, command in descendants(pid) if marker in command][:limit]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    return victims
