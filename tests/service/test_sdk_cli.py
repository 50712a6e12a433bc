"""The SDK and the client CLI against a real server (uvicorn on 127.0.0.1, local Ray, the embedded model).

One live server with two API keys serves the module: the SDK flow (submit → wait → results), its error
mapping, the AsyncClient, the client commands with their --json output and exit codes, and the
quickstart spec (with reduced limits) through `moralscope submit --wait`, whose printed metrics table
must agree with metrics.parquet.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from service_support import REPO_ROOT, LiveServer, server_env, tiny_spec

from moralscope import AsyncClient, AuthError, Client, InvalidInputError, JobState, NotFoundError
from moralscope.cli.metrics_table import format_number
from schemas.tables import METRICS_SCHEMA, SAMPLES_SCHEMA

pytestmark = pytest.mark.slow

KEY_A, KEY_B = "sdk-key-a", "sdk-key-b"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("sdk")
    live = LiveServer(server_env(state, MORALSCOPE_API_KEYS=f"{KEY_A},{KEY_B}"), state / "server.log")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def finished_job(server: LiveServer) -> str:
    """A tiny job submitted and waited for through the SDK (the flow every test below reads)."""
    with Client(server.url, api_key=KEY_A) as client:
        job = client.submit(tiny_spec(conditions=["Q", "Q+IF"], benchmarks={"winogender": {"limit": 3}}))
        assert job.state == JobState.QUEUED
        done = client.wait(job.id, timeout=600)
    assert done.state == JobState.COMPLETED, done.error
    return done.id


def _cli(*args: str, url: str, key: str | None = KEY_A, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MORALSCOPE_URL": url, "COLUMNS": "250"}
    env.pop("MORALSCOPE_API_KEY", None)
    if key is not None:
        env["MORALSCOPE_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "moralscope.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- SDK ---------------------------------------------------------------------------------------------


def test_submit_wait_results(server: LiveServer, finished_job: str, tmp_path: Path) -> None:
    with Client(server.url, api_key=KEY_A) as client:
        samples = client.results(finished_job)
        metrics = client.results(finished_job, table="metrics")
        assert samples.height == 3 * 2  # 3 occupations × 2 conditions
        assert set(samples["condition"]) == {"Q", "Q+IF"}
        assert client.results_arrow(finished_job, table="samples").schema.equals(SAMPLES_SCHEMA, check_metadata=True)
        assert set(metrics["metric"]) >= {"pearson_r", "mean_p_female"}
        saved = client.download(finished_job, tmp_path / "metrics.parquet", table="metrics")
        assert pq.read_table(saved).schema.equals(METRICS_SCHEMA, check_metadata=True)
        assert client.get(finished_job).results.report
        page = client.report(finished_job, tmp_path / "report.html").read_text()
        assert page.startswith("<!DOCTYPE html>")
        assert "Winogender" in page
        assert "pearson_r" in page
        assert finished_job in {job.id for job in client.list(state="completed").data}


def test_errors_map_to_the_exception_tree(server: LiveServer, finished_job: str) -> None:
    with Client(server.url, api_key=KEY_A, retries=0) as client:
        with pytest.raises(NotFoundError):
            client.get("job_does_not_exist")
        with pytest.raises(InvalidInputError) as invalid:
            client.submit({**tiny_spec(), "models": [{"name": "smollm2-135m-instruct", "dtype": "int3"}]})
        assert invalid.value.field == "models.0.dtype"
        assert invalid.value.http_status == 422
    with Client(server.url, api_key=KEY_B, retries=0) as other, pytest.raises(NotFoundError):
        other.get(finished_job)  # another key's job does not exist for this key
    with Client(server.url, api_key="wrong-key", retries=0) as stranger, pytest.raises(AuthError) as denied:
        stranger.list()
    assert denied.value.http_status == 401
    with Client(server.url, api_key=None, retries=0) as anonymous, pytest.raises(AuthError):
        anonymous.list()


def test_async_client(server: LiveServer, finished_job: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, api_key=KEY_A) as client:
            assert (await client.health())["status"] == "ok"
            view = await client.wait(finished_job, timeout=60)
            assert view.state == JobState.COMPLETED
            frame = await client.results(finished_job, table="metrics")
            assert isinstance(frame, pl.DataFrame)
            assert frame.height > 0
            with pytest.raises(NotFoundError):
                await client.cancel("job_does_not_exist")

    asyncio.run(scenario())


# -- CLI ----------------------------------------------------------------------------------------------


def test_client_commands_json_and_exit_codes(server: LiveServer, finished_job: str, tmp_path: Path) -> None:
    status = _cli("status", finished_job, "--json", url=server.url)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "completed"

    listing = json.loads(_cli("list", "--json", "--state", "completed", url=server.url).stdout)
    assert finished_job in {job["id"] for job in listing["data"]}

    rows = json.loads(_cli("results", finished_job, "--json", url=server.url).stdout)
    assert {row["metric"] for row in rows} >= {"pearson_r"}
    out = tmp_path / "samples.parquet"
    saved = _cli("results", finished_job, "--table", "samples", "--out", str(out), url=server.url)
    assert saved.returncode == 0, saved.stderr
    assert pq.read_table(out).num_rows == 6

    report = tmp_path / "report.html"
    saved_report = json.loads(_cli("report", finished_job, "--out", str(report), "--json", url=server.url).stdout)
    assert saved_report == {"path": str(report)}
    assert "Winogender" in report.read_text()

    cancelled = json.loads(_cli("cancel", finished_job, "--json", url=server.url).stdout)
    assert cancelled["state"] == "completed"  # a finished job stays finished

    missing = _cli("status", "job_does_not_exist", url=server.url)
    assert missing.returncode == 1
    assert "error:" in missing.stderr
    denied = _cli("list", url=server.url, key="wrong-key")
    assert denied.returncode == 1
    unreachable = _cli("list", url="http://127.0.0.1:9", timeout=120)
    assert unreachable.returncode == 3
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text(yaml.safe_dump({**tiny_spec(), "seed": -1}))
    rejected = _cli("submit", str(bad_spec), url=server.url)
    assert rejected.returncode == 1
    assert "seed" in rejected.stderr


def test_one_report_of_a_sweep_run_as_two_jobs(server: LiveServer, finished_job: str, tmp_path: Path) -> None:
    """The finished job's spec again with another params_b: the digests planned for each agree, so the SDK and
    the CLI get one page with a sweep figure; the effects of each job are in its metrics."""
    spec = tiny_spec(conditions=["Q", "Q+IF"], benchmarks={"winogender": {"limit": 3}})
    spec["models"][0]["labels"] = {"params_b": 0.36}
    with Client(server.url, api_key=KEY_A) as client:
        second = client.wait(client.submit(spec).id, timeout=600)
        assert second.state == JobState.COMPLETED, second.error
        effects = client.results(finished_job, table="metrics").filter(pl.col("metric") == "delta_pearson_r")
        page = client.report([finished_job, second.id], tmp_path / "sweep.html").read_text()
    assert effects.select("condition", "baseline", "n").rows() == [("Q+IF", "Q", 3)]
    assert '<figure class="sweep headlines" data-benchmark="winogender" data-x="params_b">' in page
    assert '<figure class="sweep effects" data-benchmark="winogender" data-x="params_b">' in page
    assert "Not combined" not in page
    out = tmp_path / "cli-sweep.html"
    saved = _cli("report", "--job", finished_job, "--job", second.id, "--out", str(out), "--json", url=server.url)
    assert json.loads(saved.stdout) == {"path": str(out)}
    assert out.read_text() == page  # rendered again, byte for byte
    theirs = _cli("report", "--job", finished_job, "--job", second.id, url=server.url, key=KEY_B)
    assert theirs.returncode == 1
    assert f"no job {finished_job!r}" in theirs.stderr  # another key's job does not exist for this one


def _quickstart_reduced(tmp_path: Path) -> Path:
    spec = yaml.safe_load((REPO_ROOT / "examples" / "quickstart.yaml").read_text())
    spec["benchmarks"] = {
        "bbq": {**spec["benchmarks"]["bbq"], "sample_per_category": 2},
        "winogender": {"limit": 4},
        "lawschool": {"sample": 3},
    }
    spec["cot"] = {"max_new_tokens": 8}
    spec["bootstrap"] = {"resamples": 50}
    path = tmp_path / "quickstart-small.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _table_cells(stdout: str) -> dict[tuple[str, ...], tuple[str, str]]:
    """(benchmark, condition, metric, method, ci_method) → (value, CI) cells of the printed rich table."""
    cells = {}
    for line in stdout.splitlines():
        parts = [part.strip() for part in line.strip().strip("│┃").split("│")]
        if len(parts) == 8 and parts[0] not in ("model", ""):
            _model, benchmark, condition, metric, method, value, interval, _n = parts
            ci_method = "none" if interval == "–" else interval.split()[-1]
            cells[(benchmark, condition, metric, method, ci_method)] = (value, interval)
    return cells


def test_quickstart_through_submit_wait(server: LiveServer, tmp_path: Path) -> None:
    """The quickstart (reduced limits) through `moralscope submit --wait`: the printed table is metrics.parquet."""
    done = _cli("submit", str(_quickstart_reduced(tmp_path)), "--wait", url=server.url, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    job_id = next(line.split()[-1] for line in done.stderr.splitlines() if line.startswith("submitted job"))
    with Client(server.url, api_key=KEY_A) as client:
        metrics = client.results(job_id, table="metrics").filter(pl.col("slice") == "overall")
    printed = _table_cells(done.stdout)
    keys = ("benchmark", "condition", "metric", "method", "ci_method")
    expected_cells = {tuple(r[k] for k in keys) for r in metrics.to_dicts()}
    assert set(printed) == expected_cells
    assert {benchmark for benchmark, *_ in printed} == {"bbq", "winogender", "lawschool"}
    for row in metrics.to_dicts():
        value, interval = printed[tuple(row[k] for k in keys)]
        assert value == format_number(row["value"])
        if row["ci_method"] != "none" and not math.isnan(row["ci_low"]):
            assert interval.startswith(f"[{format_number(row['ci_low'])}, {format_number(row['ci_high'])}]")
    assert "results:" in done.stderr
