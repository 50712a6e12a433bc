"""End to end with real parts: `moralscope run` (SQLite, local results), then two `moralscope serve`
replicas (uvicorn on loopback) sharing a real PostgreSQL job store and results on S3 (moto's server),
the one running the job killed with SIGKILL in the score phase and replaced by the other once its lease
expires; local Ray, the embedded model on the hf engine, Parquet. One uninterrupted run (the CLI's) is
the reference the taken-over job must reproduce exactly.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from service_support import REPO_ROOT, LiveServer, tiny_spec, wait_until

from schemas.tables import METRICS_SCHEMA, SAMPLES_SCHEMA
from service.db import open_database
from service.store import JobStore
from tests.support.postgres import PostgresServer
from tests.support.s3 import MotoS3Server

pytestmark = pytest.mark.slow

EXPECTED_ROWS = {  # (benchmark, condition) → rows: items × variants
    **{("bbq", c): 2 for c in ("Q", "Q+IF", "Q+IF+CoT")},
    **{("winogender", c): 2 for c in ("Q", "Q+IF", "Q+IF+CoT", "Q+MatchStats")},
    **{("lawschool", c): 2 for c in ("Q", "Q+IF", "Q+IF+CoT")},
}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


def _env(state_dir: Path, store: str) -> dict[str, str]:
    return {
        "MORALSCOPE_STORE_PATH": str(state_dir / store),
        "MORALSCOPE_RESULTS_URI": str(state_dir / "results"),
        "MORALSCOPE_DOWNLOAD": "false",
        "MORALSCOPE_RAY_NUM_CPUS": "2",
        "MORALSCOPE_LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def replica_env(postgres: PostgresServer, s3_server: MotoS3Server) -> dict[str, str]:
    """What every API replica shares: the PostgreSQL job store, the results bucket, a short lease."""
    bucket = s3_server.create_bucket("e2e")
    return {
        "MORALSCOPE_STORE_URL": postgres.database("e2e"),
        "MORALSCOPE_RESULTS_URI": f"{bucket}/results",
        "MORALSCOPE_DOWNLOAD": "false",
        "MORALSCOPE_RAY_NUM_CPUS": "2",
        "MORALSCOPE_LOG_LEVEL": "INFO",
        # a killed replica's job is taken over once its lease expires
        "MORALSCOPE_LEASE_TTL_SECONDS": "5",
        **s3_server.environment(),
    }


@pytest.fixture(scope="module")
def reference(state_dir: Path) -> dict[str, Any]:
    """`moralscope run` of the tiny spec, uninterrupted: its JSON output and its samples table."""
    spec_file = state_dir / "tiny.yaml"
    spec_file.write_text(json.dumps(tiny_spec()))
    out = state_dir / "reference"
    completed = subprocess.run(
        [sys.executable, "-m", "moralscope.cli", "run", str(spec_file), "--out", str(out), "--json"],
        cwd=REPO_ROOT,
        env={**os.environ, **_env(state_dir, "cli.sqlite3")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return {"output": json.loads(completed.stdout), "samples": pq.read_table(out / "samples.parquet"), "out": out}


@pytest.fixture(scope="module")
def server(state_dir: Path) -> Iterator[dict[str, Any]]:
    """A holder for the live server later tests use ("server"), and every server started ("all")."""
    holder: dict[str, Any] = {"all": []}
    yield holder
    for live in holder["all"]:
        live.kill()


def test_local_run_writes_complete_results(reference: dict[str, Any]) -> None:
    output, samples = reference["output"], reference["samples"]
    assert output["job"]["state"] == "completed"
    assert samples.schema.equals(SAMPLES_SCHEMA, check_metadata=True)
    keys = list(zip(*(samples[c].to_pylist() for c in ("benchmark", "condition", "item_id", "variant")), strict=True))
    assert len(keys) == len(set(keys)) == sum(EXPECTED_ROWS.values())  # one row per item(×variant)
    counts: dict[tuple[str, str], int] = {}
    for benchmark, condition, *_ in keys:
        counts[(benchmark, condition)] = counts.get((benchmark, condition), 0) + 1
    assert counts == EXPECTED_ROWS
    cot = samples.filter(pa.compute.equal(samples["condition"], "Q+IF+CoT"))
    assert all(r and t for r, t in zip(cot["reasoning"].to_pylist(), cot["reasoning_tokens"].to_pylist(), strict=True))
    assert all(abs(sum(p) - 1) < 1e-9 for p in samples["candidate_probs"].to_pylist())
    metrics = pq.read_table(reference["out"] / "metrics.parquet")
    assert metrics.schema.equals(METRICS_SCHEMA, check_metadata=True)
    cells = set(zip(metrics["benchmark"].to_pylist(), metrics["condition"].to_pylist(), strict=True))
    assert cells == set(EXPECTED_ROWS)  # metrics for every benchmark × condition
    assert {m["benchmark"] for m in output["metrics"]} == {"bbq", "winogender", "lawschool"}
    spec_json = json.loads((reference["out"] / "spec.json").read_text())
    assert spec_json["models"][0]["fingerprint"]
    assert spec_json["packages"]["torch"]
    assert {d["key"] for d in spec_json["datasets"]} >= {"bbq/data/Age.jsonl", "lawschool/law_data.csv"}
    assert not (reference["out"] / "parts").exists()
    report = (reference["out"] / "report.html").read_text()
    assert all(title in report for title in ("BBQ", "Winogender", "Law school admissions"))
    assert all(condition in report for _, condition in EXPECTED_ROWS)


def _events(url: str, job_id: str, timeout: float) -> list[dict[str, Any]]:
    events = []
    with httpx.stream("GET", f"{url}/v1/jobs/{job_id}/events", timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    return events


def _without_computed_tokens(table: pa.Table) -> pa.Table:
    return table.drop_columns(["computed_tokens"])  # operational (prefix-cache hits), not a result


def test_a_replica_killed_in_the_score_phase_is_replaced_and_the_rows_are_exact(
    state_dir: Path, server: dict[str, Any], reference: dict[str, Any], replica_env: dict[str, str]
) -> None:
    replicas = [LiveServer(replica_env, state_dir / f"replica-{i}.log") for i in (1, 2)]
    server["all"] += replicas
    job_id = httpx.post(f"{replicas[0].url}/v1/jobs", json=tiny_spec(), timeout=30).json()["id"]
    store = JobStore(open_database(replica_env["MORALSCOPE_STORE_URL"]))

    def in_score_phase() -> dict[str, Any] | None:
        view = httpx.get(f"{replicas[0].url}/v1/jobs/{job_id}", timeout=30).json()
        model = view["models"][0]
        return view if model["phase"] == "score" and model["shards_done"] >= 5 else None  # 3 reason + 2 score

    logs = "\n".join(r.log_tail(2000) for r in replicas)
    view = wait_until(in_score_phase, timeout=400, interval=0.1, what=f"score phase\n{logs}")
    owner = store.get_job(job_id).lease_owner
    assert owner is not None
    (holder,) = [r for r in replicas if r.process.pid == int(owner.split("/")[1])]
    holder.kill()
    assert view["state"] == "in_progress"
    assert view["models"][0]["shards_done"] < view["models"][0]["shards_total"]
    finished_before = {s.key: s.finished_at for s in store.shards(job_id) if s.state == "done"}

    survivor = server["server"] = next(r for r in replicas if r is not holder)
    events = _events(survivor.url, job_id, timeout=400)
    assert events[-1]["type"] == "end"
    assert events[-1]["job"]["state"] == "completed", survivor.log_tail()
    assert "progress" in {e["type"] for e in events}
    assert any("after its runner died (its lease expired)" in (e.get("message") or "") for e in events)
    job = store.get_job(job_id)
    assert (job.lease_epoch, job.crash_resumes) == (2, 1)  # taken over once

    after = {s.key: s.finished_at for s in store.shards(job_id)}
    assert all(after[key] == when for key, when in finished_before.items())  # finished shards were not redone
    # downloaded through the API, streamed from the bucket
    samples = pq.read_table(io.BytesIO(httpx.get(f"{survivor.url}/v1/jobs/{job_id}/results/samples").content))
    assert _without_computed_tokens(samples).equals(_without_computed_tokens(reference["samples"])), (
        "the job taken over differs from the uninterrupted run"
    )
    view = httpx.get(f"{survivor.url}/v1/jobs/{job_id}").json()
    assert view["results"]["samples"].startswith("s3://e2e/results/")
    assert view["request_counts"] == {"total": 26, "completed": 26, "committed": 26, "failed": 0, "errors": 0}
    assert view["tokens_processed"] > 0
    assert view["eta_seconds"] == 0
    metrics = httpx.get(f"{survivor.url}/v1/jobs/{job_id}/results/metrics?format=json").json()
    reference_metrics = pq.read_table(reference["out"] / "metrics.parquet").to_pylist()
    assert [(m["benchmark"], m["condition"], m["slice"], m["metric"], m["method"]) for m in metrics] == [
        (m["benchmark"], m["condition"], m["slice"], m["metric"], m["method"]) for m in reference_metrics
    ]
    assert "Law school admissions" in httpx.get(f"{survivor.url}/v1/jobs/{job_id}/results/report").text
    prometheus = httpx.get(f"{survivor.url}/metrics").text
    assert "moralscope_rows_scored_total 20.0" in prometheus
    store.db.close()


def test_cancel_a_running_job_keeps_finished_shards(server: dict[str, Any]) -> None:
    live: LiveServer = server["server"]
    spec = tiny_spec(benchmarks={"lawschool": {"limit": 30}}, conditions=["Q"], shard_size=4)
    job_id = httpx.post(f"{live.url}/v1/jobs", json=spec, timeout=30).json()["id"]

    def started() -> bool:
        view = httpx.get(f"{live.url}/v1/jobs/{job_id}", timeout=30).json()
        return bool(view["request_counts"]["completed"])

    wait_until(started, timeout=300, what="a finished shard")
    assert httpx.post(f"{live.url}/v1/jobs/{job_id}/cancel", timeout=30).json()["state"] == "cancelling"
    events = _events(live.url, job_id, timeout=120)
    view = events[-1]["job"]
    assert view["state"] == "cancelled"
    assert 0 < view["request_counts"]["completed"] < 60
    samples = pq.read_table(io.BytesIO(httpx.get(f"{live.url}/v1/jobs/{job_id}/results/samples").content))
    assert samples.num_rows == view["request_counts"]["completed"]  # the finished shards, kept
    assert view["results"]["samples"].endswith(f"{job_id}/samples.parquet")
    assert samples["item_id"].to_pylist()[:4] == ["0", "0", "1", "1"]
    assert httpx.get(f"{live.url}/v1/jobs/{job_id}/results/metrics").status_code == 404
    assert httpx.get(f"{live.url}/v1/jobs/{job_id}/results/report").status_code == 404


def test_a_condition_that_pushes_prompts_past_the_context_is_a_failed_cell(server: dict[str, Any]) -> None:
    """The embedded model has 8192 positions; ~8,400 tokens of instruction push every law-school prompt past them."""
    live: LiveServer = server["server"]
    long = {"name": "Long", "instruction": "Treat every applicant the same way. " * 1200, "benchmarks": ["lawschool"]}
    benchmarks = {"bbq": {"categories": ["Age"], "limit": 1}, "winogender": {"limit": 2}, "lawschool": {"limit": 1}}
    job_id = httpx.post(
        f"{live.url}/v1/jobs", json=tiny_spec(benchmarks=benchmarks, conditions=["Q", long]), timeout=30
    )
    job_id = job_id.json()["id"]
    view = _events(live.url, job_id, timeout=400)[-1]["job"]
    assert view["state"] == "completed", view["error"]
    (cell,) = view["failed_cells"]
    assert (cell["benchmark"], cell["condition"], cell["rows"], cell["errors"]) == ("lawschool", "Long", 2, 2)
    assert "exceed the model's 8192 positions" in cell["cause"]
    metrics = httpx.get(f"{live.url}/v1/jobs/{job_id}/results/metrics?format=json", timeout=30).json()
    assert {(m["benchmark"], m["condition"]) for m in metrics} == {
        ("bbq", "Q"),
        ("winogender", "Q"),
        ("lawschool", "Q"),
    }
    samples = pq.read_table(io.BytesIO(httpx.get(f"{live.url}/v1/jobs/{job_id}/results/samples").content))
    rows = samples.to_pylist()
    assert [r["condition"] == "Long" for r in rows] == [r["error"] is not None for r in rows]
    assert all(r["candidate_probs"] is None for r in rows if r["error"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"benchmarks": {"bbq": {"categories": ["SES"]}}}, "bbq/data/SES.jsonl not found"),
        # a server path is refused at submission (tests/service/test_access.py); a Hub id fails in the runner
        ({"models": [{"name": "no-such-org/no-such-model"}]}, "it is not in the model cache"),
        (
            {"models": [{"name": "smollm2-135m-instruct", "engine_options": {"max_batch_tokens": 0}}]},
            "max_batch_tokens",
        ),
    ],
    ids=["missing-dataset", "missing-model", "engine-error"],
)
def test_jobs_that_cannot_run_fail_with_the_reason(
    server: dict[str, Any], overrides: dict[str, Any], message: str
) -> None:
    live: LiveServer = server["server"]
    job_id = httpx.post(f"{live.url}/v1/jobs", json=tiny_spec(**overrides), timeout=30).json()["id"]
    view = _events(live.url, job_id, timeout=300)[-1]["job"]
    assert view["state"] == "failed"
    assert message in view["error"]
    assert httpx.get(f"{live.url}/readyz").status_code == 200  # the service is unharmed


def test_graceful_shutdown(server: dict[str, Any]) -> None:
    live: LiveServer = server["server"]
    assert live.stop()  # SIGTERM: uvicorn's graceful shutdown stops the runner (Ray's handler sets the exit code)
    assert "Application shutdown complete" in live.log_path.read_text()
    del server["server"]
