"""``GET /v1/jobs/{id}/events`` on the wire (the real app in-process; the runner is off, so a job stays
queued until cancelled): what a browser's EventSource or any SSE client reads — named events with
increasing ids and JobEvent JSON, keepalive comments, and a plain 404 before any stream starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from service_support import tiny_spec

from schemas.jobs import JobEvent, JobState
from service.api import events as events_module
from service.app import create_app
from service.settings import Settings

A = {"Authorization": "Bearer key-a"}


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(api_keys="key-a,key-b"), run_jobs=False)) as test_client:
        yield test_client


def _submit(client: TestClient) -> str:
    response = client.post("/v1/jobs", json=tiny_spec(), headers=A)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _frames(text: str) -> list[list[str]]:
    """The stream's frames (blank-line separated), each as its lines."""
    return [frame.split("\n") for frame in text.split("\n\n") if frame.strip()]


def test_events_on_the_wire(client: TestClient) -> None:
    job_id = _submit(client)
    client.app.state.store.add_event(job_id, "log", "dataset bbq/data/Age.jsonl verified")
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=A).status_code == 200
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=A) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        text = stream.read().decode()
    assert "\r" not in text
    frames = _frames(text)
    ids, types = [], []
    for frame in frames:
        fields = dict(line.split(": ", 1) for line in frame)
        assert set(fields) == {"id", "event", "data"}, frame
        event = JobEvent.model_validate_json(fields["data"])  # one data line: the JobEvent JSON
        assert event.type == fields["event"]
        assert event.job.id == job_id
        ids.append(int(fields["id"]))
        types.append(event.type)
    assert ids == list(range(1, len(frames) + 1))
    assert types == ["log", "state", "end"]
    assert JobEvent.model_validate_json(frames[0][2].removeprefix("data: ")).message == (
        "dataset bbq/data/Age.jsonl verified"
    )
    end = JobEvent.model_validate_json(frames[-1][2].removeprefix("data: "))
    assert end.job.state == JobState.CANCELLED


def test_keepalive_comments_while_nothing_happens(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "KEEPALIVE_SECONDS", 0.2)
    job_id = _submit(client)
    lines: list[str] = []
    canceller: threading.Thread | None = None
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=A) as stream:
        for line in stream.iter_lines():
            lines.append(line)
            if line.startswith(": ping") and canceller is None:
                # the first keepalive: end the job from another thread; the stream then ends by itself
                cancel = f"/v1/jobs/{job_id}/cancel"
                canceller = threading.Thread(target=client.post, args=(cancel,), kwargs={"headers": A})
                canceller.start()
    assert canceller is not None
    canceller.join()
    assert any(line.startswith(": ping") for line in lines)
    assert lines[0] == "id: 1"
    assert "event: end" in lines


def test_a_missing_job_is_a_404_before_any_stream(client: TestClient) -> None:
    for path, headers in (("/v1/jobs/job_missing/events", A), (f"/v1/jobs/{_submit(client)}/events", {})):
        response = client.get(path, headers=headers)
        assert response.status_code in (401, 404)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] in ("not_found", "unauthorized")
    other = {"Authorization": "Bearer key-b"}
    response = client.get(f"/v1/jobs/{_submit(client)}/events", headers=other)  # another key's job
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
