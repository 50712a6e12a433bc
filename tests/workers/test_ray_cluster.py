"""workers.cluster and the pool on a real two-node Ray cluster started on this machine.

The cluster is private to this test: its own temp dir, free ports, worker port ranges apart from Ray's
defaults, and both ``ray start --block`` processes in new sessions, so teardown ends exactly the
processes of those two sessions, by pid (never ``ray stop``, which would stop every Ray on the machine).
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray

from schemas.errors import UnavailableError
from schemas.inference import EngineConfig, ScoreRequest
from tests.support.fake_engine import FakeEngine, fake_engine_factory
from workers.cluster import ensure_ray, shutdown_ray
from workers.pool import EnginePool

RAY_CLI = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _session_pids(session_id: int) -> list[int]:
    """Processes whose session id is ``session_id`` (a ``ray start`` we launched with start_new_session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
        if int(fields[3]) == session_id and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def _end_sessions(session_ids: list[int]) -> None:
    """SIGTERM every process of our sessions, then SIGKILL what is left after a grace period."""
    for sig, grace_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        for session_id in session_ids:
            for pid in _session_pids(session_id):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_session_pids(s) for s in session_ids):
            time.sleep(0.5)


def _node_args(worker_ports: int) -> list[str]:
    return [
        "--num-cpus=1",
        f"--object-store-memory={100 * 1024**2}",
        f"--node-manager-port={_free_port()}",
        f"--object-manager-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--metrics-export-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
        f"--min-worker-port={worker_ports}",
        f"--max-worker-port={worker_ports + 49}",
        "--disable-usage-stats",
        "--block",
    ]


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout_s:.0f}s")


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _alive_node_ids() -> set[str]:
    return {node["NodeID"] for node in ray.nodes() if node["Alive"]}  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[str]:
    shutdown_ray()
    temp_dir = Path(tempfile.mkdtemp(prefix="msray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    gcs_port = _free_port()
    worker_ports = random.randrange(30000, 39000, 100)  # apart from Ray's default 10002-19999
    address = f"127.0.0.1:{gcs_port}"
    launched: list[subprocess.Popen[bytes]] = []
    saved_address = os.environ.get("RAY_ADDRESS")
    try:
        head_cmd = [RAY_CLI, "start", "--head", f"--port={gcs_port}", f"--ray-client-server-port={_free_port()}"]
        head_cmd += ["--include-dashboard=false", f"--temp-dir={temp_dir}", *_node_args(worker_ports)]
        with open(temp_dir / "head.out", "wb") as out:
            launched.append(
                subprocess.Popen(head_cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            )
        _wait_for(lambda: _port_open(gcs_port), "the head node's GCS did not open its port")
        worker_cmd = [RAY_CLI, "start", f"--address={address}", *_node_args(worker_ports + 50)]
        with open(temp_dir / "worker.out", "wb") as out:
            launched.append(
                subprocess.Popen(worker_cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            )
        os.environ["RAY_ADDRESS"] = address
        ensure_ray()  # connects to RAY_ADDRESS
        _wait_for(lambda: len(_alive_node_ids()) == 2, "the two nodes did not both join")
        yield address
    finally:
        shutdown_ray()
        if saved_address is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = saved_address
        _end_sessions([process.pid for process in launched])
        for process in launched:
            process.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_pool_spreads_actors_over_two_nodes(two_node_cluster: str, tmp_path: Path) -> None:
    assert ray.is_initialized()
    node_ids = _alive_node_ids()
    ensure_ray()  # reuses the connection: a no-op
    config = EngineConfig(model_path="fake-model", engine="hf", options={"log_dir": str(tmp_path), "cache": False})
    requests = [ScoreRequest(f"prompt {i}", (" yes", " no")) for i in range(60)]
    with EnginePool(config, num_actors=2, engine_factory=fake_engine_factory, batch_size=5) as pool:
        results = pool.score(requests)
        infos = pool.info()
    assert results == FakeEngine(EngineConfig(model_path="fake-model", options={"cache": False})).score(requests)
    assert {info.node_id for info in infos} == node_ids, "one actor per node"
    served = {int(p.stem): len(p.read_text().splitlines()) for p in tmp_path.glob("*.log")}
    assert set(served) == {info.pid for info in infos}
    assert sum(served.values()) == 12


def test_unreachable_cluster_address_fails_fast_with_a_clear_error() -> None:
    shutdown_ray()
    with socket.socket() as sock:  # a port that is bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(UnavailableError, match=rf"Ray cluster at '127.0.0.1:{port}' cannot be reached"):
            ensure_ray(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 15
    assert not ray.is_initialized()


def test_malformed_cluster_address_names_the_setting() -> None:
    shutdown_ray()
    with pytest.raises(UnavailableError, match="Ray address must be host:port") as info:
        ensure_ray("just-a-host")
    assert info.value.field == "ray_address"
