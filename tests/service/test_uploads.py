"""Uploads: the way a tenant's data file reaches the server (the real app in-process, no runner)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_access import ROWS, A, B, _spec

from service.app import create_app
from service.settings import Settings


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = make_settings(api_keys="key-a,key-b", max_upload_bytes=2048)
    with TestClient(create_app(settings, run_jobs=False), raise_server_exceptions=False) as test_client:
        yield test_client


def test_an_upload_is_stored_once_and_only_its_owner_can_name_it(client: TestClient) -> None:
    first = client.post("/v1/uploads", params={"filename": "keys.jsonl"}, content=ROWS, headers=A)
    assert first.status_code == 201, first.text
    view = first.json()
    digest = hashlib.sha256(ROWS).hexdigest()
    assert view == {
        "ref": f"upload:{digest}.jsonl",
        "sha256": digest,
        "bytes": len(ROWS),
        "format": "jsonl",
        "filename": "keys.jsonl",
    }
    again = client.post("/v1/uploads", params={"filename": "other-name.jsonl"}, content=ROWS, headers=A)
    assert again.json()["ref"] == view["ref"]
    job = client.post("/v1/jobs", json=_spec(view["ref"]), headers=A)
    assert job.status_code == 201, job.text
    assert job.json()["spec"]["benchmarks"]["custom"][0]["rows"] == 2
    other = client.post("/v1/jobs", json=_spec(view["ref"]), headers=B)  # B never uploaded it
    assert other.status_code == 422
    assert "cannot read data file" in other.json()["error"]["message"]


def test_bad_uploads(client: TestClient) -> None:
    too_big = client.post("/v1/uploads", params={"filename": "d.jsonl"}, content=b"x" * 4096, headers=A)
    assert too_big.status_code == 413
    assert "MORALSCOPE_MAX_UPLOAD_BYTES" in too_big.json()["error"]["message"]
    unnamed = client.post("/v1/uploads", params={"filename": "d.txt"}, content=ROWS, headers=A)
    assert unnamed.status_code == 422
    assert "cannot tell the format" in unnamed.json()["error"]["message"]
    empty = client.post("/v1/uploads", params={"filename": "d.csv"}, content=b"", headers=A)
    assert empty.status_code == 422
    assert client.post("/v1/uploads", params={"filename": "d.csv"}, content=ROWS).status_code == 401


def test_uploads_live_under_the_results_root(client: TestClient, tmp_path: Path) -> None:
    view = client.post("/v1/uploads", params={"filename": "k.jsonl"}, content=ROWS, headers=A).json()
    stored = list((tmp_path / "results" / "uploads").rglob("*.jsonl"))
    assert [p.name for p in stored] == [view["ref"].removeprefix("upload:")]
    assert stored[0].read_bytes() == ROWS
    assert hashlib.sha256(stored[0].read_bytes()).hexdigest() == view["sha256"]
