"""The REST API in-process (real app, real SQLite, real files; the runner is off so no model loads)."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from service_support import tiny_spec

from schemas.jobs import JobState
from schemas.tables import METRICS_SCHEMA, SAMPLES_SCHEMA
from service.app import create_app
from service.results import JobFiles
from service.settings import Settings

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    app = create_app(make_settings(api_keys="key-a,key-b", max_queued_jobs_per_key=3), run_jobs=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _submit(client: TestClient, headers: dict[str, str] = A, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=tiny_spec(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_submit_returns_a_queued_job_view(client: TestClient) -> None:
    job = _submit(client)
    assert job["state"] == "queued"
    assert job["id"].startswith("job_")
    assert job["spec"]["models"][0]["alias"] == "smol"
    assert job["request_counts"] == {"total": 26, "completed": 0, "committed": 0, "failed": 0, "errors": 0}  # 20 + 6
    assert [m["model"] for m in job["models"]] == ["smol"]
    assert job["results"]["location"].endswith(job["id"])


def test_api_keys_are_required_and_jobs_are_private(client: TestClient) -> None:
    missing = client.get("/v1/jobs")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/jobs", headers={"Authorization": "Basic a2V5LWE="}).status_code == 401
    job_id = _submit(client)["id"]
    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("GET", f"/v1/jobs/{job_id}/events"),
        ("GET", f"/v1/jobs/{job_id}/results/samples"),
        ("GET", f"/v1/jobs/{job_id}/results/metrics"),
    ):
        response = client.request(method, path, headers=B)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert client.get("/v1/jobs", headers=B).json() == {"data": [], "count": 0}
    assert client.get("/v1/jobs", headers=A).json()["count"] == 1
    assert client.get(f"/v1/jobs/{job_id}", headers=A).json()["state"] == "queued"  # B's cancel did nothing
    assert client.get("/healthz").status_code == 200  # probes need no key


def test_idempotency_key(client: TestClient) -> None:
    headers = {**A, "Idempotency-Key": "submit-1"}
    first = client.post("/v1/jobs", json=tiny_spec(), headers=headers)
    second = client.post("/v1/jobs", json=tiny_spec(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert client.get("/v1/jobs", headers=A).json()["count"] == 1
    other_key_holder = client.post("/v1/jobs", json=tiny_spec(), headers={**B, "Idempotency-Key": "submit-1"})
    assert other_key_holder.json()["id"] != first.json()["id"]
    conflict = client.post("/v1/jobs", json=tiny_spec(seed=8), headers=headers)
    assert conflict.status_code == 422
    assert conflict.json()["error"]["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (tiny_spec(models=[{"name": "m", "dtype": "float64"}]), "models.0.dtype", "float32"),
        (tiny_spec(models=[]), "models", "at least 1"),
        ({k: v for k, v in tiny_spec().items() if k != "models"}, "models", "required"),
        (tiny_spec(modelz=[]), "modelz", "not permitted"),
        (tiny_spec(benchmarks={"bbq": {"categories": ["Ages"]}}), "benchmarks.bbq.categories", "unknown BBQ category"),
        (tiny_spec(conditions=["Q", "Q+XYZ"]), "conditions", "unknown condition"),
        (tiny_spec(conditions=[{"name": "x", "cot": {}}]), "conditions.0.cot.lead_in", "required"),
        (tiny_spec(shard_size=0), "shard_size", "greater than or equal to 1"),
        (tiny_spec(cot={"temperature": "hot"}), "cot.temperature", "number"),
        (tiny_spec(seed=-3), "seed", "greater than or equal to 0"),
        ([1, 2], None, "job spec"),
    ],
)
def test_malformed_specs_get_422_naming_the_field(client: TestClient, body: Any, field: str | None, words: str) -> None:
    response = client.post("/v1/jobs", json=body, headers=A)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field
    assert words in error["message"]


def test_invalid_json_gets_422(client: TestClient) -> None:
    response = client.post("/v1/jobs", content=b'{"models": [', headers={**A, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["error"]["message"]


def test_bodies_over_the_limit_get_413(client: TestClient) -> None:
    big = json.dumps(tiny_spec(labels={"blob": "x" * 1_100_000})).encode()
    response = client.post("/v1/jobs", content=big, headers={**A, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "MORALSCOPE_MAX_BODY_BYTES" in response.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    chunked = client.post("/v1/jobs", content=chunks(), headers={**A, "Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert client.get("/v1/jobs", headers=A).json()["count"] == 0


def test_too_many_unfinished_jobs_get_429(client: TestClient) -> None:
    ids = [_submit(client, seed=i)["id"] for i in range(3)]
    refused = client.post("/v1/jobs", json=tiny_spec(), headers=A)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "limit_exceeded"
    assert "MORALSCOPE_MAX_QUEUED_JOBS_PER_KEY" in refused.json()["error"]["message"]
    assert client.post("/v1/jobs", json=tiny_spec(), headers=B).status_code == 201  # per key
    client.post(f"/v1/jobs/{ids[0]}/cancel", headers=A)
    assert client.post("/v1/jobs", json=tiny_spec(), headers=A).status_code == 201


def test_too_many_items_get_422(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(max_items_per_job=10), run_jobs=False)
    with TestClient(app) as client:
        response = client.post("/v1/jobs", json=tiny_spec())
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "limit_exceeded"
    assert "20 rows" in response.json()["error"]["message"]


def test_listing_pages_and_filters(client: TestClient) -> None:
    ids = [_submit(client, seed=i)["id"] for i in range(3)]
    client.post(f"/v1/jobs/{ids[1]}/cancel", headers=A)
    page = client.get("/v1/jobs?limit=2&offset=0", headers=A).json()
    assert page["count"] == 3
    assert [j["id"] for j in page["data"]] == ids[::-1][:2]
    assert [j["id"] for j in client.get("/v1/jobs?limit=2&offset=2", headers=A).json()["data"]] == ids[:1]
    cancelled = client.get("/v1/jobs?state=cancelled", headers=A).json()
    assert cancelled["count"] == 1
    assert cancelled["data"][0]["id"] == ids[1]
    bad = client.get("/v1/jobs?limit=0", headers=A)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "limit"


def test_cancel_a_queued_job_and_follow_its_events(client: TestClient) -> None:
    job_id = _submit(client)["id"]
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=A).json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["finished_at"] is not None
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=A) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    events = [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events][-2:] == ["state", "end"]
    assert events[-1]["job"]["state"] == "cancelled"
    missing = client.get(f"/v1/jobs/{job_id}/results/samples", headers=A)
    assert missing.status_code == 404
    assert "no samples results" in missing.json()["error"]["message"]


def _complete_by_hand(client: TestClient, job_id: str) -> None:
    """Give a job result files and the completed state, as the runner would."""
    store = client.app.state.store  # type: ignore[attr-defined]
    files = JobFiles(store.get_job(job_id).location)
    files.write_parquet("samples.parquet", SAMPLES_SCHEMA.empty_table())
    row = dict.fromkeys(METRICS_SCHEMA.names)
    row.update(model="smol", model_labels="{}", benchmark="winogender", condition="Q", slice="overall")
    row.update(metric="pearson_r", method="expected", value=0.25, ci_low=math.nan, ci_high=math.nan)
    row.update(ci_method="none", confidence=0.95, n=2, n_clusters=2, n_excluded=0)
    files.write_parquet("metrics.parquet", pa.Table.from_pylist([row], schema=METRICS_SCHEMA))
    files.write_text("spec.json", json.dumps({"job_id": job_id}))
    for state in (JobState.VALIDATING, JobState.IN_PROGRESS, JobState.FINALIZING, JobState.COMPLETED):
        store.set_state(job_id, state)


def test_results_downloads_in_every_format(client: TestClient) -> None:
    job_id = _submit(client)["id"]
    assert client.get(f"/v1/jobs/{job_id}/results/metrics", headers=A).status_code == 404
    _complete_by_hand(client, job_id)
    view = client.get(f"/v1/jobs/{job_id}", headers=A).json()
    assert view["results"]["samples"].endswith(f"{job_id}/samples.parquet")
    samples = client.get(f"/v1/jobs/{job_id}/results/samples", headers=A)
    assert samples.status_code == 200
    assert pq.read_table(io.BytesIO(samples.content)).schema.equals(SAMPLES_SCHEMA)
    metrics = client.get(f"/v1/jobs/{job_id}/results/metrics", headers=A)
    assert pq.read_table(io.BytesIO(metrics.content)).num_rows == 1
    as_json = client.get(f"/v1/jobs/{job_id}/results/metrics?format=json", headers=A).json()
    assert as_json[0]["value"] == 0.25
    assert as_json[0]["ci_low"] is None
    as_csv = client.get(f"/v1/jobs/{job_id}/results/metrics?format=csv", headers=A)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0].startswith('"model","model_labels","benchmark"')
    assert client.get(f"/v1/jobs/{job_id}/results/metrics?format=xml", headers=A).status_code == 422
    assert client.get(f"/v1/jobs/{job_id}/results/spec", headers=A).json() == {"job_id": job_id}


def test_probes_and_prometheus_metrics(client: TestClient) -> None:
    _submit(client)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"store", "ray"}
    text = client.get("/metrics").text
    assert 'moralscope_jobs{state="queued"} 1.0' in text
    assert "moralscope_queue_depth 1.0" in text
    assert "moralscope_rows_scored_total 0.0" in text
    assert "moralscope_tokens_per_second 0.0" in text


def test_unknown_routes_and_unexpected_errors_are_json(client: TestClient) -> None:
    unknown = client.get("/v2/nothing")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert client.delete("/v1/jobs", headers=A).json()["error"]["code"] == "method_not_allowed"

    def explode() -> None:
        raise RuntimeError("boom")

    client.app.add_api_route("/boom", explode)  # type: ignore[attr-defined]
    crashed = client.get("/boom")
    assert crashed.status_code == 500
    assert crashed.json()["error"]["code"] == "internal_error"
    assert "boom" not in crashed.text  # internals stay in the log
    assert client.get("/healthz").status_code == 200  # and the service carries on


def test_openapi_documents_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/events"} <= set(
        schema["paths"]
    )
    post = schema["paths"]["/v1/jobs"]["post"]
    assert post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert client.get("/docs").status_code == 200


def test_the_sdk_speaks_this_api(client: TestClient) -> None:
    """The SDK's AsyncClient against the same app in-process: views, events and errors decode."""
    import asyncio

    import httpx

    from moralscope.client import AsyncClient
    from schemas.errors import AuthError, InvalidInputError, NotFoundError

    transport = httpx.ASGITransport(app=client.app)

    async def scenario() -> None:
        async with AsyncClient("http://api", api_key="key-a", transport=transport, retries=0) as sdk:
            job = await sdk.submit(tiny_spec())
            assert (await sdk.get(job.id)).state == JobState.QUEUED
            assert (await sdk.list()).count == 1
            assert (await sdk.cancel(job.id)).state == JobState.CANCELLED
            assert (await sdk.wait(job.id, timeout=30)).state == JobState.CANCELLED
            with pytest.raises(NotFoundError):
                await sdk.get("job_missing")
            with pytest.raises(InvalidInputError) as invalid:  # the server validates; the SDK sends it as is
                await sdk.submit({**tiny_spec(), "seed": -1})
            assert invalid.value.field == "seed"
        async with AsyncClient("http://api", api_key="nope", transport=transport, retries=0) as stranger:
            with pytest.raises(AuthError):
                await stranger.list()

    asyncio.run(scenario())
