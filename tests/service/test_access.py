"""Server paths and URIs are the operator's; uploads are the way in (the real app in-process, no runner)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.errors import InvalidInputError, ModelResolutionError
from service.access import AccessPolicy
from service.app import create_app
from service.settings import Settings
from workers.models import model_name_kind, resolve_model

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}
ROWS = (
    b'{"id": "r1", "q": "Who forgot the keys?", "a": "Ann", "b": "Bob", "c": "Unknown", "unknown": 2, "biased": 0}\n'
    b'{"id": "r2", "q": "Who was late?", "a": "Bob", "b": "Ann", "c": "Unknown", "unknown": 2, "biased": 1}\n'
)


def _spec(data: str | None = None, model: str = "smollm2-135m-instruct", **custom: Any) -> dict[str, Any]:
    benchmarks: dict[str, Any] = {"winogender": {"limit": 2}}
    if data is not None:
        entry = {
            "name": "keys",
            "kind": "multiple_choice",
            "data": data,
            "question": "{q} {options}.",
            "options": ["{a}", "{b}", "{c}"],
            "id_column": "id",
            "unknown_column": "unknown",
            "biased_column": "biased",
        }
        benchmarks["custom"] = [entry | custom]
    return {"models": [{"name": model}], "benchmarks": benchmarks, "conditions": ["Q"]}


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    folder = tmp_path / "allowed"
    folder.mkdir()
    (folder / "d.jsonl").write_bytes(ROWS)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "d.jsonl").write_bytes(ROWS)
    (folder / "escape").symlink_to(outside)  # a link out of the allowed folder
    return folder


@pytest.fixture
def client(make_settings: Callable[..., Settings], allowed: Path) -> Iterator[TestClient]:
    settings = make_settings(
        api_keys="key-a,key-b",
        allowed_local_roots=str(allowed),
        allowed_uri_prefixes="s3://team-bucket/benchmarks/",
        max_upload_bytes=2048,
    )
    with TestClient(create_app(settings, run_jobs=False), raise_server_exceptions=False) as test_client:
        yield test_client


def _refused(client: TestClient, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=spec, headers=A)
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_model_paths_are_refused_whether_or_not_they_exist(client: TestClient) -> None:
    existing, absent = "/usr/share", "/usr/no-such-model-folder"
    assert Path(existing).is_dir()
    first, second = _refused(client, _spec(model=existing)), _refused(client, _spec(model=absent))
    assert first["field"] == second["field"] == "models.0.name"
    assert first["message"].replace(existing, "PATH") == second["message"].replace(absent, "PATH")
    assert "lies outside the folders its operator allows" in first["message"]
    for name in ("/root/.ssh", "../../etc", "~/.cache", "./models/x", "a/b/c"):
        assert "model folder" in _refused(client, _spec(model=name))["message"], name


def test_data_paths_resolve_dots_and_links_before_the_check(client: TestClient, allowed: Path) -> None:
    accepted = client.post("/v1/jobs", json=_spec(str(allowed / "d.jsonl")), headers=A)
    assert accepted.status_code == 201, accepted.text
    (entry,) = accepted.json()["spec"]["benchmarks"]["custom"]
    assert entry["sha256"] == hashlib.sha256(ROWS).hexdigest()  # pinned at submission
    assert entry["rows"] == 2
    for sneaky in (str(allowed / ".." / "allowed" / ".." / "outside" / "d.jsonl"), str(allowed / "escape" / "d.jsonl")):
        error = _refused(client, _spec(sneaky))
        assert error["field"] == "benchmarks.custom.0.data"
        assert "lies outside the folders its operator allows" in error["message"]


def test_uris_need_an_allowed_prefix_and_no_options(client: TestClient) -> None:
    cases = {
        "s3://other-bucket/d.jsonl": "is not under a prefix its operator allows",
        "s3://team-bucket/benchmarks-private/d.jsonl": "is not under a prefix",
        "s3://team-bucket/benchmarks/d.jsonl?endpoint_override=evil.example:9000": "carries options",
        "s3://team-bucket/benchmarks/d.jsonl#x": "carries options",
        "s3://key:secret@team-bucket/benchmarks/d.jsonl": "carries credentials",
        "s3://team-bucket/benchmarks/../secrets/d.jsonl": ". or .. segments",
        "s3://team-bucket/benchmarks/%2e%2e/secrets/d.jsonl": ". or .. segments",
    }
    for uri, fragment in cases.items():
        error = _refused(client, _spec(uri))
        assert error["field"] == "benchmarks.custom.0.data", uri
        assert fragment in error["message"], (uri, error["message"])
    policy = AccessPolicy(uri_prefixes=("s3://team-bucket/benchmarks/",))
    policy.check_uri("s3://team-bucket/benchmarks/a/d.jsonl", field="data")  # allowed: no exception


def test_nothing_is_allowed_by_default(make_settings: Callable[..., Settings], allowed: Path) -> None:
    policy = AccessPolicy.from_settings(make_settings())
    with pytest.raises(InvalidInputError, match="its operator allows none") as caught:
        policy.check_data(str(allowed / "d.jsonl"), "data")
    assert "MORALSCOPE_ALLOWED_LOCAL_ROOTS" in caught.value.message
    with pytest.raises(InvalidInputError, match="allows no URIs"):
        policy.check_data("gs://bucket/d.csv", "data")
    AccessPolicy(unrestricted=True).check_data("/anywhere/d.csv", "data")  # moralscope run


def test_model_names_are_classified_by_syntax(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = {
        "smollm2-135m-instruct": "builtin",
        "org/model": "hub",
        "/abs/path": "path",
        "./rel": "path",
        "../up": "path",
        "~/home": "path",
        "a/b/c": "path",
        "bare-name": "other",
    }
    assert {name: model_name_kind(name) for name in kinds} == kinds
    # a folder named like a Hub id in the server's working directory is never loaded for an API job
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)
    with pytest.raises(ModelResolutionError) as caught:
        resolve_model("org/model", cache_dir=tmp_path / "cache", download=False, any_local_folder=False)
    assert "is incomplete" not in caught.value.message  # it went to the Hub cache, not the folder
    with pytest.raises(ModelResolutionError, match="is incomplete"):
        resolve_model("org/model", cache_dir=tmp_path / "cache", download=False)  # local mode: the folder


def test_bad_data_is_refused_at_submission(client: TestClient, allowed: Path) -> None:
    (allowed / "bad.jsonl").write_bytes(ROWS.replace(b'"unknown": 2, "biased": 1', b'"unknown": 7, "biased": 1'))
    error = _refused(client, _spec(str(allowed / "bad.jsonl")))
    assert error["code"] == "data_error"
    assert "bad.jsonl: row 2, column 'unknown': 7 is not one of the 3 options" in error["message"]
    error = _refused(client, _spec(str(allowed / "d.jsonl"), sha256="0" * 64))
    assert "but the spec pins" in error["message"]
    assert os.path.exists(allowed / "d.jsonl")
