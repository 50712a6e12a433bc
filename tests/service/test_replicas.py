"""Several API replicas on one store: real `moralscope serve` processes, a fast fake engine
(tests.support.fake_engine) because the model does not matter here.

On PostgreSQL with results on S3 (a real PostgreSQL server and moto's S3 server on 127.0.0.1):
- 50 jobs submitted concurrently through two replicas each run exactly once;
- a job whose replica is killed three times before it commits anything is stopped as a crash loop.

On one SQLite file shared by two servers on this machine:
- ten kill -9 of whichever server holds a job, each after some progress: the job completes with the
  rows of an undisturbed run (issue 10, item 5), handed over each time to the other server.

The embedded model on PostgreSQL + S3, with a replica killed mid-job, is in test_e2e.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from service_support import LiveServer, tiny_spec, wait_until

from service.db import open_database
from service.store import JobRecord, JobStore
from tests.support import fake_engine
from tests.support.postgres import PostgresServer
from tests.support.ray_head import RayHead
from tests.support.s3 import MotoS3Server

pytestmark = pytest.mark.slow

LEASE_TTL = 5


class Replicas:
    """Two live servers sharing a store and a results bucket; a killed one is replaced by a new one."""

    def __init__(self, env: dict[str, str], logs: Path, store: JobStore) -> None:
        self.env, self.logs, self.store = env, logs, store
        self.started = 0
        self.servers = [self._start(), self._start()]

    def _start(self) -> LiveServer:
        self.started += 1
        return LiveServer(self.env, self.logs / f"replica-{self.started}.log")

    def holder(self, job_id: str) -> int | None:
        """The index of the replica that holds the job's lease (None while nobody does)."""
        owner = self.store.get_job(job_id).lease_owner
        pids = [server.process.pid for server in self.servers]
        pid = int(owner.split("/")[1]) if owner else None
        return pids.index(pid) if pid in pids else None

    def kill_and_replace(self, index: int) -> None:
        self.servers[index].kill()
        self.servers[index] = self._start()

    def close(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    """One Ray cluster for every server of the module (a restarted server just connects to it)."""
    with RayHead(num_cpus=4) as head:
        yield head


def _replicas(store_url: str, results_uri: str, logs: Path, ray: RayHead, **env: str) -> Replicas:
    environment = {
        "MORALSCOPE_RAY_ADDRESS": ray.address,
        "MORALSCOPE_STORE_URL": store_url,
        "MORALSCOPE_RESULTS_URI": results_uri,
        "MORALSCOPE_ENGINE_FACTORY": fake_engine.SETTING,
        "MORALSCOPE_LEASE_TTL_SECONDS": str(LEASE_TTL),
        "MORALSCOPE_CONCURRENCY": "4",
        "MORALSCOPE_MAX_QUEUED_JOBS_PER_KEY": "100",
        "MORALSCOPE_DOWNLOAD": "false",
        "MORALSCOPE_LOG_LEVEL": "INFO",
        **env,
    }
    return Replicas(environment, logs, JobStore(open_database(store_url)))


@pytest.fixture(scope="module")
def replicas(
    postgres: PostgresServer, s3_server: MotoS3Server, ray_head: RayHead, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    """Two replicas on PostgreSQL, results on S3."""
    bucket = s3_server.create_bucket("replicas")
    cluster = _replicas(
        postgres.database("replicas"),
        f"{bucket}/results",
        tmp_path_factory.mktemp("replicas"),
        ray_head,
        **s3_server.environment(),
    )
    yield cluster
    cluster.close()
    cluster.store.db.close()


@pytest.fixture
def sqlite_pair(tmp_path: Path, ray_head: RayHead) -> Iterator[Replicas]:
    """Two servers sharing one SQLite file and a results folder on this machine."""
    cluster = _replicas(f"sqlite://{tmp_path}/jobs.sqlite3", str(tmp_path / "results"), tmp_path, ray_head)
    yield cluster
    cluster.close()
    cluster.store.db.close()


def _fake_spec(**overrides: Any) -> dict[str, Any]:
    model = {"name": "smollm2-135m-instruct", "cpus_per_actor": 0.5, "engine_options": {}}
    model["engine_options"] = overrides.pop("engine_options", {})
    return tiny_spec(models=[model], **overrides)


def _samples(url: str, job_id: str) -> pa.Table:
    response = httpx.get(f"{url}/v1/jobs/{job_id}/results/samples", timeout=60)
    response.raise_for_status()
    table = pq.read_table(io.BytesIO(response.content))
    return table.drop_columns(["computed_tokens"])  # operational, not a result


def _wait_terminal(store: JobStore, job_ids: list[str], timeout: float) -> list[JobRecord]:
    def finished() -> list[JobRecord] | None:
        jobs = [store.get_job(job_id) for job_id in job_ids]
        return jobs if all(job.state.is_terminal for job in jobs) else None

    result: list[JobRecord] = wait_until(finished, timeout=timeout, interval=0.5, what="jobs to finish")
    return result


def _shards_done(store: JobStore, job_id: str) -> int:
    return sum(s.state == "done" for s in store.shards(job_id))


def test_ten_kills_of_the_holding_server_and_the_job_completes_with_identical_rows(sqlite_pair: Replicas) -> None:
    replicas = sqlite_pair
    spec = _fake_spec(
        benchmarks={"winogender": {"limit": 4}},
        conditions=["Q", "Q+IF", "Q+IF+CoT"],
        shard_size=1,
        engine_options={"delay_s": 0.4},
    )
    first = replicas.servers[0].url
    reference_id = httpx.post(f"{first}/v1/jobs", json={**spec, "name": "undisturbed"}, timeout=60).json()["id"]
    (reference,) = _wait_terminal(replicas.store, [reference_id], timeout=300)
    assert reference.state.value == "completed", reference.error
    job_id = httpx.post(f"{first}/v1/jobs", json={**spec, "name": "disturbed"}, timeout=60).json()["id"]
    total = len(replicas.store.shards(reference_id))  # 4 items x (Q, Q+IF, CoT reasoning, CoT scoring), 1 row each
    assert total == 16
    done = 0
    for kill in range(10):

        def progressed(before: int = done) -> tuple[int, int] | None:
            holder = replicas.holder(job_id)
            now_done = _shards_done(replicas.store, job_id)
            return (holder, now_done) if holder is not None and now_done > before else None

        holder, done = wait_until(progressed, timeout=180, interval=0.05, what=f"progress before kill {kill + 1}")
        assert done < total, f"the job finished after {kill} kills: make it longer"
        replicas.kill_and_replace(holder)
    (job,) = _wait_terminal(replicas.store, [job_id], timeout=300)
    assert job.state.value == "completed", job.error
    # ten deaths, each taken over by the other server (a server starved past its lease would add one)
    assert job.crash_resumes >= 10
    assert job.lease_epoch == job.crash_resumes + 1
    assert _shards_done(replicas.store, job_id) == total
    disturbed = _samples(replicas.servers[1].url, job_id)
    undisturbed = _samples(replicas.servers[0].url, reference_id)
    assert disturbed.num_rows == 12  # 4 items x 3 conditions
    assert disturbed.equals(undisturbed), "the job killed ten times differs from the undisturbed run"


def test_fifty_jobs_through_two_replicas_each_run_exactly_once(replicas: Replicas, tmp_path: Path) -> None:
    log_dir = tmp_path / "served"
    log_dir.mkdir()
    spec = _fake_spec(
        benchmarks={"winogender": {"limit": 2}}, conditions=["Q"], engine_options={"log_dir": str(log_dir)}
    )

    def submit(index: int) -> str:
        url = replicas.servers[index % 2].url
        response = httpx.post(f"{url}/v1/jobs", json={**spec, "name": f"job-{index}"}, timeout=60)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    with ThreadPoolExecutor(16) as pool:
        job_ids = list(pool.map(submit, range(50)))
    assert len(set(job_ids)) == 50
    jobs = _wait_terminal(replicas.store, job_ids, timeout=600)
    assert {job.state.value for job in jobs} == {"completed"}, [j.error for j in jobs if j.error][:3]
    assert {job.lease_epoch for job in jobs} == {1}  # each claimed once, never taken over
    # one line per batch the engines served: start end kind requests first-prompt (tests/support/fake_engine.py)
    served = sum(int(line.split()[3]) for path in log_dir.iterdir() for line in path.read_text().splitlines())
    assert served == 50 * 2  # every request sent to an engine once
    runners = {
        int(e.message.split("/")[1])
        for job in jobs
        for e in replicas.store.events(job.id)
        if e.message and e.message.startswith("claimed by runner")
    }
    assert runners == {server.process.pid for server in replicas.servers}  # both replicas ran jobs
    for index, job_id in enumerate(job_ids[:6]):  # results are on S3, served by either replica
        assert _samples(replicas.servers[index % 2].url, job_id).num_rows == 2


def test_a_job_that_kills_its_replica_before_committing_is_stopped_after_three_tries(replicas: Replicas) -> None:
    spec = _fake_spec(benchmarks={"winogender": {"limit": 1}}, conditions=["Q"], engine_options={"delay_s": 600})
    job_id = httpx.post(f"{replicas.servers[0].url}/v1/jobs", json=spec, timeout=60).json()["id"]
    for kill in range(3):

        def dispatching(kill: int = kill) -> tuple[int] | None:
            job = replicas.store.get_job(job_id)
            model_busy = replicas.store.models(job_id)[0].phase in ("reason", "score")
            holder = replicas.holder(job_id)
            return (holder,) if holder is not None and model_busy and job.crash_streak == kill else None

        (holder,) = wait_until(dispatching, timeout=180, what=f"the job running, try {kill + 1}")
        replicas.kill_and_replace(holder)
    (job,) = _wait_terminal(replicas.store, [job_id], timeout=120)
    assert job.state.value == "failed"
    assert job.error is not None
    assert "the service died 3 times in a row while running this job, with no shard finished" in job.error
    assert _shards_done(replicas.store, job_id) == 0
    view = httpx.get(f"{replicas.servers[0].url}/v1/jobs/{job_id}", timeout=30).json()
    assert view["state"] == "failed"
    assert [m["phase"] for m in view["models"]] == ["failed"]
    assert json.dumps(view)  # the service answers normally after the crash loop
