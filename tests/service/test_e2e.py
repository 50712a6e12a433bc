"""End to end with real parts: `moralscope run`, then `moralscope serve` (uvicorn on loopback) killed with
SIGKILL in the score phase and started again; local Ray, the embedded model on the hf engine, SQLite,
Parquet. One uninterrupted run (the CLI's) is the reference the resumed job must reproduce exactly.
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
from service.db import Database
from service.store import JobStore

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
    """A holder for the current live server (tests replace it when they kill one)."""
    holder: dict[str, Any] = {}
    yield holder
    if "server" in holder:
        holder["server"].kill()


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


def test_sigkill_in_the_score_phase_then_restart_resumes_exactly(
    state_dir: Path, server: dict[str, Any], reference: dict[str, Any]
) -> None:
    env = _env(state_dir, "server.sqlite3")
    first = server["server"] = LiveServer(env, state_dir / "server-1.log")
    job_id = httpx.post(f"{first.url}/v1/jobs", json=tiny_spec(), timeout=30).json()["id"]

    def in_score_phase() -> dict[str, Any] | None:
        view = httpx.get(f"{first.url}/v1/jobs/{job_id}", timeout=30).json()
        model = view["models"][0]
        return view if model["phase"] == "score" and model["shards_done"] >= 5 else None  # 3 reason + 2 score

    view = wait_until(in_score_phase, timeout=400, interval=0.1, what=f"score phase\n{first.log_tail()}")
    first.kill()
    assert view["state"] == "in_progress"
    assert view["models"][0]["shards_done"] < view["models"][0]["shards_total"]
    store = JobStore(Database(Path(env["MORALSCOPE_STORE_PATH"])))
    finished_before = {s.key: s.finished_at for s in store.shards(job_id) if s.state == "done"}

    second = server["server"] = LiveServer(env, state_dir / "server-2.log")
    events = _events(second.url, job_id, timeout=400)
    assert events[-1]["type"] == "end"
    assert events[-1]["job"]["state"] == "completed", second.log_tail()
    assert "progress" in {e["type"] for e in events}
    assert any("resumed" in (e.get("message") or "") for e in events)

    after = {s.key: s.finished_at for s in store.shards(job_id)}
    assert all(after[key] == when for key, when in finished_before.items())  # finished shards were not redone
    samples = pq.read_table(io.BytesIO(httpx.get(f"{second.url}/v1/jobs/{job_id}/results/samples").content))
    operational = ["computed_tokens"]  # depends on what the engine had cached: not part of the result
    assert samples.drop(operational).equals(reference["samples"].drop(operational)), "the resumed job differs"
    view = httpx.get(f"{second.url}/v1/jobs/{job_id}").json()
    assert view["request_counts"] == {"total": 26, "completed": 26, "committed": 26, "failed": 0, "errors": 0}
    assert view["tokens_processed"] > 0
    assert view["eta_seconds"] == 0
    metrics = httpx.get(f"{second.url}/v1/jobs/{job_id}/results/metrics?format=json").json()
    reference_metrics = pq.read_table(reference["out"] / "metrics.parquet").to_pylist()
    assert [(m["benchmark"], m["condition"], m["slice"], m["metric"], m["method"]) for m in metrics] == [
        (m["benchmark"], m["condition"], m["slice"], m["metric"], m["method"]) for m in reference_metrics
    ]
    prometheus = httpx.get(f"{second.url}/metrics").text
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
