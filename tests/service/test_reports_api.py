"""``GET /v1/reports``: one report of several finished jobs, in-process (real app, SQLite, files; no runner).

The results are written by hand, as the runner writes them; the end-to-end path (jobs planned and run on the
real model, then combined by the SDK and the CLI) is in test_sdk_cli.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from fastapi.testclient import TestClient
from service_support import tiny_spec
from test_report import _metrics

from moralscope.client import AsyncClient
from schemas.errors import InvalidInputError, NotFoundError
from schemas.jobs import JobState
from service.app import create_app
from service.results import JobFiles
from service.settings import Settings

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    app = create_app(make_settings(api_keys="key-a,key-b"), run_jobs=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _finished(client: TestClient, params_b: float, headers: dict[str, str] = A) -> str:
    """A job submitted through the API and given the results the runner would write."""
    response = client.post("/v1/jobs", json=tiny_spec(name=f"size {params_b}"), headers=headers)
    job_id: str = response.json()["id"]
    store = client.app.state.store  # type: ignore[attr-defined]
    files = JobFiles(store.get_job(job_id).location)
    metrics = _metrics({"smol": {"params_b": params_b}}).filter(pl.col("benchmark") == "winogender")  # lean
    files.write_parquet("metrics.parquet", metrics.to_arrow())
    digests = [
        {"benchmark": "winogender", "condition": c, "items": 1, "items_sha256": "i", "prompts_sha256": c, "cot": None}
        for c in ("Q", "Q+IF")
    ]
    spec = {"job_id": job_id, "spec": tiny_spec(name=f"size {params_b}"), "prompt_digests": digests}
    files.write_text("spec.json", json.dumps(spec))
    for state in (JobState.VALIDATING, JobState.IN_PROGRESS, JobState.FINALIZING, JobState.COMPLETED):
        store.set_state(job_id, state)
    return job_id


def test_a_report_of_several_jobs(client: TestClient, tmp_path: Path) -> None:
    small, large = _finished(client, 0.135), _finished(client, 1.7)
    response = client.get("/v1/reports", params={"job": [small, large]}, headers=A)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "attachment" in response.headers["content-disposition"]
    page = response.text
    assert f"<code>{small}</code> (size 0.135)" in page
    assert f"<code>{large}</code> (size 1.7)" in page
    assert '<figure class="sweep headlines" data-benchmark="winogender" data-x="params_b">' in page

    # the SDK: several ids → this endpoint; one id → the job's own report.html (not written here: 404)
    async def scenario() -> None:
        transport = httpx.ASGITransport(app=client.app)
        async with AsyncClient("http://api", api_key="key-a", transport=transport, retries=0) as sdk:
            saved = await sdk.report([small, large], tmp_path / "sweep.html")
            assert saved.read_text() == page
            with pytest.raises(NotFoundError):
                await sdk.report(small, tmp_path / "one.html")
            with pytest.raises(InvalidInputError):
                await sdk.report([], tmp_path / "none.html")

    asyncio.run(scenario())


def test_only_the_callers_finished_jobs_once_each(client: TestClient) -> None:
    mine, theirs = _finished(client, 0.135), _finished(client, 1.7, headers=B)
    assert client.get("/v1/reports", params={"job": [mine, theirs]}, headers=A).status_code == 404
    assert client.get("/v1/reports", params={"job": [mine]}, headers=B).status_code == 404
    queued = client.post("/v1/jobs", json=tiny_spec(), headers=A).json()["id"]
    unfinished = client.get("/v1/reports", params={"job": [mine, queued]}, headers=A)
    assert unfinished.status_code == 404
    assert "written when it completes" in unfinished.json()["error"]["message"]
    repeated = client.get("/v1/reports", params={"job": [mine, mine]}, headers=A)
    assert repeated.status_code == 422
    assert repeated.json()["error"]["field"] == "job"
    assert client.get("/v1/reports", headers=A).status_code == 422
    assert client.get("/v1/reports", params={"job": [mine]}).status_code == 401
