"""The runner under faults, through a live server (real uvicorn, real local Ray, real SQLite and Parquet) on
the fake engine (``tests/support/fake_engine.py``: deterministic scores whatever the batching, switches for
poisoned, hanging and erroring prompts): every disturbed run must end with exactly the rows of the
undisturbed one, except where a request was made to fail, which becomes one error row.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from service_support import REPO_ROOT, LiveServer, kill_descendants, tiny_spec, wait_until

from service.db import open_database
from service.store import JobStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FACTORY = "tests.support.fake_engine:fake_engine_factory"
DELAY_S = 0.25


def spec(**engine_options: Any) -> dict[str, Any]:
    model = {"name": "smollm2-135m-instruct", "alias": "smol", "engine_options": {"delay_s": DELAY_S, **engine_options}}
    return tiny_spec(models=[model])


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def env(state_dir: Path) -> dict[str, str]:
    return {
        "MORALSCOPE_STORE_PATH": str(state_dir / "store.sqlite3"),
        "MORALSCOPE_RESULTS_URI": str(state_dir / "results"),
        "MORALSCOPE_DOWNLOAD": "false",
        "MORALSCOPE_RAY_NUM_CPUS": "2",
        "MORALSCOPE_ENGINE_FACTORY": FACTORY,
        "MORALSCOPE_BATCH_DEADLINE_FLOOR_S": "2",
        "MORALSCOPE_ENGINE_MAX_RETRIES": "1",
    }


@pytest.fixture(scope="module")
def server(env: dict[str, str], state_dir: Path) -> Iterator[dict[str, LiveServer]]:
    """A holder for the current live server (the kill -9 test replaces it)."""
    holder = {"server": LiveServer(env, state_dir / "server-1.log")}
    yield holder
    holder["server"].kill()


def url(server: dict[str, LiveServer]) -> str:
    return server["server"].url


def submit(server: dict[str, LiveServer], body: dict[str, Any]) -> str:
    response = httpx.post(f"{url(server)}/v1/jobs", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def view(server: dict[str, LiveServer], job_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url(server)}/v1/jobs/{job_id}", timeout=30).json())


def wait_end(server: dict[str, LiveServer], job_id: str, timeout: float = 300) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        current = view(server, job_id)
        return current if current["state"] in ("completed", "failed", "cancelled") else None

    return dict(wait_until(ended, timeout=timeout, interval=0.3, what=f"job {job_id}\n{server['server'].log_tail()}"))


def samples(server: dict[str, LiveServer], job_id: str) -> pa.Table:
    content = httpx.get(f"{url(server)}/v1/jobs/{job_id}/results/samples", timeout=60).content
    return pq.read_table(io.BytesIO(content)).drop(["computed_tokens"])  # operational: may differ


def committed(server: dict[str, LiveServer], job_id: str) -> int:
    return int(view(server, job_id)["request_counts"]["committed"])


def unique_marker(prompts: list[str], index: int) -> str:
    """A piece of ``prompts[index]`` found in no other prompt (CoT reasoning prompts are prefixes of answers)."""
    target = prompts[index]
    for size in (40, 80, 160):
        for start in range(0, max(1, len(target) - size), 7):
            piece = target[start : start + size]
            if sum(piece in p for p in prompts) == 1:
                return piece
    raise AssertionError(f"no unique piece in prompt {index}")


@pytest.fixture(scope="module")
def reference(server: dict[str, LiveServer]) -> pa.Table:
    job_id = submit(server, spec())
    done = wait_end(server, job_id)
    assert done["state"] == "completed", done["error"]
    return samples(server, job_id)


def test_an_undisturbed_run_reports_rates_tokens_and_cache_hits(
    server: dict[str, LiveServer], reference: pa.Table
) -> None:
    assert reference.num_rows == 20
    assert reference["error"].null_count == 20
    jobs = httpx.get(f"{url(server)}/v1/jobs?state=completed", timeout=30).json()["data"]
    done = jobs[-1]
    model = done["models"][0]
    assert (model["phase"], model["requests_done"], model["requests_total"]) == ("done", 26, 26)
    assert 0 < done["tokens_computed"] < done["tokens_processed"]  # the fake engine's prefix cache hits
    assert done["cache_hit_rate"] == pytest.approx(1 - done["tokens_computed"] / done["tokens_processed"])
    assert done["request_counts"] == {"total": 26, "completed": 26, "committed": 26, "failed": 0, "errors": 0}
    prometheus = httpx.get(f"{url(server)}/metrics", timeout=30).text
    assert f"moralscope_tokens_computed_total {float(done['tokens_computed'])}" in prometheus
    assert "moralscope_prefix_cache_hit_rate" in prometheus
    ready = httpx.get(f"{url(server)}/readyz", timeout=30).json()
    assert ready["checks"]["ray"].startswith("connected (local Ray at")


def test_a_poisoned_request_becomes_exactly_one_error_row(server: dict[str, LiveServer], reference: pa.Table) -> None:
    prompts = reference["prompt"].to_pylist()
    target = next(i for i, c in enumerate(reference["condition"].to_pylist()) if c == "Q+MatchStats")
    body = {**spec(raise_on=[unique_marker(prompts, target)]), "max_error_rate": 0.5}
    job_id = submit(server, body)
    done = wait_end(server, job_id)
    assert done["state"] == "completed", done["error"]
    assert done["request_counts"]["errors"] == 1
    assert done["failed_cells"] == []  # 1 of 2 rows: within this spec's max_error_rate
    got = samples(server, job_id)
    errors = got["error"].to_pylist()
    assert [i for i, e in enumerate(errors) if e] == [target]
    assert errors[target].startswith("EngineError: fake engine refuses prompt")
    assert got["candidate_probs"][target].as_py() is None
    keep = [i for i in range(got.num_rows) if i != target]
    assert got.take(keep).drop(["error"]).equals(reference.take(keep).drop(["error"]))
    metrics = httpx.get(f"{url(server)}/v1/jobs/{job_id}/results/metrics?format=json", timeout=30).json()
    cell = [
        m
        for m in metrics
        if (m["benchmark"], m["condition"], m["metric"]) == ("winogender", "Q+MatchStats", "pearson_r")
    ]
    assert cell
    assert all((m["n"], m["n_excluded"]) == (1, 1) for m in cell)


def test_a_request_that_hangs_hits_its_deadline_then_becomes_an_error_row(
    server: dict[str, LiveServer], reference: pa.Table
) -> None:
    prompts = reference["prompt"].to_pylist()
    target = next(i for i, c in enumerate(reference["benchmark"].to_pylist()) if c == "lawschool")
    job_id = submit(server, {**spec(hang_on=[unique_marker(prompts, target)]), "max_error_rate": 0.5})
    done = wait_end(server, job_id)
    assert done["state"] == "completed", done["error"]
    got = samples(server, job_id)
    errors = got["error"].to_pylist()
    assert [i for i, e in enumerate(errors) if e] == [target]
    assert "ran past its deadline of 2.0s" in errors[target]
    keep = [i for i in range(got.num_rows) if i != target]
    assert got.take(keep).drop(["error"]).equals(reference.take(keep).drop(["error"]))
    log = server["server"].log_path.read_text()
    assert log.count("ran past its deadline") >= 3  # the batch, its retry, the request alone


def test_an_actor_killed_at_a_random_moment_changes_no_row(server: dict[str, LiveServer], reference: pa.Table) -> None:
    job_id = submit(server, spec())
    wait_until(lambda: committed(server, job_id) > 0, timeout=120, what="a first shard")

    def rates() -> dict[str, Any] | None:
        model = view(server, job_id)["models"][0]
        return model if model["rows_per_second"] else None

    running = wait_until(rates, timeout=60, what="the running model's rates in the job view")
    assert running["phase"] in ("reason", "score")
    assert running["tokens_per_second"] > 0
    assert 0 < running["computed_tokens_per_second"] <= running["tokens_per_second"]
    assert running["actors"] == 1
    assert running["eta_seconds"] is not None
    time.sleep(random.Random(os.getpid()).uniform(0, 1.0))
    assert kill_descendants(server["server"].process.pid, "ray::EngineHost", limit=1)
    done = wait_end(server, job_id)
    assert done["state"] == "completed", done["error"]
    assert samples(server, job_id).equals(reference)
    assert "replacing it" in server["server"].log_path.read_text()


def test_two_models_with_one_cpu_each_run_at_the_same_time(server: dict[str, LiveServer], state_dir: Path) -> None:
    logs = {name: state_dir / f"two-{name}" for name in ("a", "b")}
    models = []
    for name, log in logs.items():
        log.mkdir()
        options = {"delay_s": DELAY_S, "log_dir": str(log)}
        models.append({"name": "smollm2-135m-instruct", "alias": name, "cpus_per_actor": 1, "engine_options": options})
    job_id = submit(server, tiny_spec(models=models))
    assert wait_end(server, job_id)["state"] == "completed"
    spans = {}
    for name, log in logs.items():
        lines = [line.split() for path in log.glob("*.log") for line in path.read_text().splitlines()]
        spans[name] = (min(float(x[0]) for x in lines), max(float(x[1]) for x in lines))
    overlap = min(spans["a"][1], spans["b"][1]) - max(spans["a"][0], spans["b"][0])
    shorter = min(end - start for start, end in spans.values())
    assert overlap > 0.5 * shorter, f"the two models' batches did not overlap in time: {spans}"


def test_a_broken_condition_is_a_failed_cell_in_the_view_the_cli_and_the_report(
    server: dict[str, LiveServer],
) -> None:
    broken = {"name": "Broken", "instruction": "BROKEN-INSTRUCTION", "benchmarks": ["lawschool"]}
    body = {**spec(error_on=["BROKEN-INSTRUCTION"]), "conditions": ["Q", broken]}
    job_id = submit(server, body)
    done = wait_end(server, job_id)
    assert done["state"] == "completed", done["error"]
    (cell,) = done["failed_cells"]
    assert (cell["model"], cell["benchmark"], cell["condition"], cell["rows"], cell["errors"]) == (
        "smol",
        "lawschool",
        "Broken",
        2,
        2,
    )
    assert cell["cause"] == "fake engine cannot serve this request (error_on)"
    assert len(cell["examples"]) == 2
    metrics = httpx.get(f"{url(server)}/v1/jobs/{job_id}/results/metrics?format=json", timeout=30).json()
    cells = {(m["benchmark"], m["condition"]) for m in metrics}
    assert cells == {("bbq", "Q"), ("winogender", "Q"), ("lawschool", "Q")}
    report = httpx.get(f"{url(server)}/v1/jobs/{job_id}/results/report", timeout=30).text
    assert "Failed cells" in report
    assert "fake engine cannot serve this request" in report
    status = subprocess.run(
        [sys.executable, "-m", "moralscope.cli", "status", job_id, "--url", url(server)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert status.returncode == 0, status.stderr
    assert "failed cells" in status.stdout
    assert "Broken" in status.stdout


def test_a_job_whose_every_cell_fails_ends_failed_with_the_cause(server: dict[str, LiveServer]) -> None:
    job_id = submit(server, spec(error_on=["<|im_start|>"]))  # every prompt of the chat template
    done = wait_end(server, job_id)
    assert done["state"] == "failed"
    assert done["error"].startswith("no cell could be scored: all 10 cells")
    assert len(done["failed_cells"]) == 10
    assert done["request_counts"]["errors"] == 26  # 6 reasoning requests, 20 rows (6 of them never sent)


def test_losing_ray_pauses_the_job_and_it_resumes_with_identical_rows(
    server: dict[str, LiveServer], reference: pa.Table, env: dict[str, str]
) -> None:
    live = server["server"]
    job_id = submit(server, spec())
    wait_until(lambda: committed(server, job_id) > 0, timeout=120, what="a first shard")
    assert kill_descendants(live.process.pid, "gcs_server")
    wait_until(
        lambda: httpx.get(f"{live.url}/readyz", timeout=30).status_code == 503, timeout=30, interval=0.1, what="503"
    )
    done = wait_end(server, job_id)
    assert live.process.poll() is None, "the server must stay up"
    assert done["state"] == "completed", done["error"]
    assert samples(server, job_id).equals(reference)
    store = JobStore(open_database(f"sqlite:///{env['MORALSCOPE_STORE_PATH']}"))
    messages = [e.message for e in store.events(job_id)]
    store.db.close()
    assert any(m and m.startswith("paused: the local Ray's gcs_server stopped") for m in messages), messages
    assert any(m and m.startswith("resumed: Ray is reachable again") for m in messages), messages
    assert httpx.get(f"{live.url}/readyz", timeout=30).status_code == 200


def test_kill_9_during_pipelined_reasoning_and_scoring_then_restart_resumes_exactly(
    server: dict[str, LiveServer], reference: pa.Table, env: dict[str, str], state_dir: Path
) -> None:
    job_id = submit(server, spec(delay_s=0.6))
    store = JobStore(open_database(f"sqlite:///{env['MORALSCOPE_STORE_PATH']}"))

    def pipelined() -> bool:
        shards = store.shards(job_id)
        reason = [s.state for s in shards if s.key.phase == "reason"]
        score = [s.state for s in shards if s.key.phase == "score"]
        return "done" in reason and "pending" in reason and "done" in score

    wait_until(pipelined, timeout=120, interval=0.05, what="reasoning and scoring both in progress")
    server["server"].kill()
    finished_before = {s.key: s.finished_at for s in store.shards(job_id) if s.state == "done"}
    server["server"] = LiveServer(env, state_dir / "server-2.log")
    done = wait_end(server, job_id)
    assert done["state"] == "completed", done["error"]
    after = {s.key: s.finished_at for s in store.shards(job_id)}
    assert all(after[key] == when for key, when in finished_before.items())  # finished shards were not redone
    assert samples(server, job_id).equals(reference)
    store.db.close()
