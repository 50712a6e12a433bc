"""The web console in-process (real app, real SQLite; the runner is off): sessions, CSRF, pages, the submit form.

The same console in a real browser against a live server is tests/service/test_console_browser.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import Field
from service_support import tiny_spec

from schemas.jobs import JobView
from service.app import create_app
from service.console.job_page import extra_fields
from service.settings import Settings

KEY_A, KEY_B = "key-a-0123456789", "key-b-0123456789"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
SECRET = "console-test-session-secret"


def csrf_of(page: Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"no CSRF token in the page:\n{page.text[:2000]}"
    return found.group(1)


def login(client: TestClient, key: str, next_path: str = "/") -> Response:
    form = client.get("/login", params={"next": next_path})
    return client.post(
        "/login", data={"csrf_token": csrf_of(form), "key": key, "next": next_path}, follow_redirects=False
    )


@pytest.fixture
def make_client(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides), run_jobs=False), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def keyed(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(api_keys=f"{KEY_A},{KEY_B}", session_secret=SECRET)


def _submit(client: TestClient, headers: dict[str, str] | None = None, **overrides: Any) -> str:
    response = client.post("/v1/jobs", json=tiny_spec(**overrides), headers=headers or {})
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def test_without_keys_everything_works_without_login(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    empty = client.get("/")
    assert empty.status_code == 200
    assert "No jobs yet" in empty.text
    assert "moralscope_session=" in empty.headers["set-cookie"]
    assert "Log out" not in empty.text
    job_id = _submit(client, name="local job")
    listing = client.get("/")
    assert f'data-job-id="{job_id}"' in listing.text
    assert "local job" in listing.text
    assert "set-cookie" not in listing.headers  # the session opened on the first visit is kept
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert 'data-state="queued"' in page.text
    assert client.get("/login", follow_redirects=False).headers["location"] == "/"
    for name, value in {"Content-Security-Policy": "script-src 'self'", "Cache-Control": "no-store"}.items():
        assert value in page.headers[name]


def test_login_once_then_a_session_cookie_that_never_holds_the_key(keyed: TestClient) -> None:
    first = keyed.get("/jobs/job_x?tab=1", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=/jobs/job_x%3Ftab%3D1"
    wrong = login(keyed, "not-a-key")
    assert wrong.status_code == 401
    assert "not valid for this server" in wrong.text
    assert "not-a-key" not in wrong.text
    done = login(keyed, KEY_A, next_path="/submit")
    assert done.status_code == 303
    assert done.headers["location"] == "/submit"
    cookie = done.headers["set-cookie"]
    assert re.search(r"HttpOnly", cookie)
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    assert KEY_A not in cookie
    assert KEY_A not in done.headers["location"]
    page = keyed.get("/")
    assert page.status_code == 200
    assert "Log out" in page.text
    assert KEY_A not in page.text
    assert keyed.get("/login", follow_redirects=False).headers["location"] == "/"  # already logged in
    assert login(keyed, KEY_A, next_path="//evil.example/x").headers["location"] == "/"  # never off-site


def test_the_console_shows_only_the_sessions_jobs(keyed: TestClient) -> None:
    mine = _submit(keyed, A, name="job of a")
    theirs = _submit(keyed, B, name="job of b")
    login(keyed, KEY_A)
    listing = keyed.get("/").text
    assert mine in listing
    assert theirs not in listing
    assert "job of b" not in listing
    other = keyed.get(f"/jobs/{theirs}")
    assert other.status_code == 404
    assert "text/html" in other.headers["content-type"]
    assert "job of b" not in other.text
    assert keyed.get("/v1/jobs").json()["count"] == 1  # the API reads the cookie too
    stream = keyed.get("/events", params={"job": theirs})
    assert stream.status_code == 200
    assert stream.text == ""


def test_forms_need_the_sessions_csrf_token_and_this_origin(keyed: TestClient) -> None:
    job_id = _submit(keyed, A)
    login(keyed, KEY_A)
    token = csrf_of(keyed.get(f"/jobs/{job_id}"))
    refused = [
        keyed.post(f"/jobs/{job_id}/cancel", follow_redirects=False),
        keyed.post(f"/jobs/{job_id}/cancel", data={"csrf_token": "forged"}, follow_redirects=False),
        keyed.post(
            f"/jobs/{job_id}/cancel",
            data={"csrf_token": token},
            headers={"Origin": "http://evil.example"},
            follow_redirects=False,
        ),
        keyed.post("/submit", data={"csrf_token": "forged", "spec": json.dumps(tiny_spec())}, follow_redirects=False),
        keyed.post("/logout", follow_redirects=False),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert "reload the page" in refused[0].text
    assert "cross-site request refused" in refused[2].text
    assert keyed.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
    cancelled = keyed.post(
        f"/jobs/{job_id}/cancel",
        data={"csrf_token": token},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == f"/jobs/{job_id}"
    assert keyed.get(f"/v1/jobs/{job_id}").json()["state"] == "cancelled"


def test_api_calls_with_the_cookie_alone_need_the_csrf_header(keyed: TestClient) -> None:
    job_id = _submit(keyed, A)
    login(keyed, KEY_A)
    token = csrf_of(keyed.get("/"))
    bare = keyed.post(f"/v1/jobs/{job_id}/cancel")
    assert bare.status_code == 403
    assert bare.json()["error"]["code"] == "forbidden"
    assert "X-CSRF-Token" in bare.json()["error"]["message"]
    assert keyed.post("/v1/jobs", json=tiny_spec()).status_code == 403
    assert keyed.post(f"/v1/jobs/{job_id}/cancel", headers={"X-CSRF-Token": token}).json()["state"] == "cancelled"
    cross = keyed.post("/v1/jobs", json=tiny_spec(), headers={**A, "Origin": "https://evil.example"})
    assert cross.status_code == 403  # even with a key: a browser page of another site sent it
    assert keyed.post("/v1/jobs", json=tiny_spec(), headers=A).status_code == 201  # the SDK's way is unchanged
    logout = keyed.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert logout.status_code == 303
    assert logout.headers["location"] == "/login"
    assert keyed.get("/v1/jobs").status_code == 401
    assert keyed.get("/", follow_redirects=False).headers["location"] == "/login"


def test_a_session_ends_when_its_key_is_removed(make_client: Callable[..., TestClient]) -> None:
    before = make_client(api_keys=f"{KEY_A},{KEY_B}", session_secret=SECRET)
    login(before, KEY_B)
    assert before.get("/v1/jobs").status_code == 200
    after = make_client(api_keys=KEY_A, session_secret=SECRET)  # a replica or restart without key b
    after.cookies = before.cookies
    assert after.get("/v1/jobs").status_code == 401
    assert after.get("/", follow_redirects=False).headers["location"] == "/login"


def test_cookie_is_secure_over_https_and_cross_site_arrivals_reload_first(keyed: TestClient) -> None:
    form = keyed.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in form.headers["set-cookie"]
    arrival = TestClient(keyed.app).get("/jobs/job_x", headers={"Sec-Fetch-Site": "cross-site"})
    assert arrival.status_code == 200
    assert 'http-equiv="refresh"' in arrival.text
    assert "set-cookie" not in arrival.headers  # a logged-in session's cookie is not replaced


def test_the_submit_form_shows_a_422_at_the_field_it_names(keyed: TestClient) -> None:
    login(keyed, KEY_A)
    form = keyed.get("/submit")
    assert form.status_code == 200
    assert "<textarea" in form.text
    bad = "name: bad\nmodels:\n  - name: smollm2-135m-instruct\n    dtype: float64\nbenchmarks:\n  winogender: {}\n"
    submission = re.search(r'name="submission" value="([^"]+)"', form.text)
    assert submission
    data = {"csrf_token": csrf_of(form), "submission": submission.group(1), "spec": bad}
    response = keyed.post("/submit", data=data)
    assert response.status_code == 422
    assert 'data-error-field="models.0.dtype"' in response.text
    assert re.search(
        r'class="line marked" data-error-line="4"><span class="number">4</span>\s*dtype: float64', response.text
    )
    assert 'aria-invalid="true"' in response.text
    assert "got &#39;float64&#39;" in response.text
    assert f">{bad}</textarea>" in response.text  # the text comes back to be fixed
    upload = keyed.post(
        "/submit",
        data={"csrf_token": data["csrf_token"]},
        files={"file": ("spec.yaml", b"models: [\n", "application/yaml")},
    )
    assert upload.status_code == 422
    assert 'data-error-field="spec"' in upload.text
    assert "line 2" in upload.text
    good = json.dumps(tiny_spec(name="from a file"))
    first = keyed.post(
        "/submit", data=data, files={"file": ("spec.json", good.encode(), "application/json")}, follow_redirects=False
    )
    again = keyed.post("/submit", data={**data, "spec": good}, follow_redirects=False)  # the same form, sent twice
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert keyed.get("/v1/jobs").json()["count"] == 1
    job_page = keyed.get(first.headers["location"])
    assert "from a file" in job_page.text


def test_the_lists_stream_ends_with_each_jobs_end(keyed: TestClient) -> None:
    job_id = _submit(keyed, A)
    keyed.post(f"/v1/jobs/{job_id}/cancel", headers=A)
    login(keyed, KEY_A)
    stream = keyed.get("/events", params={"job": [job_id, job_id]})
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = re.findall(r"event: (\w+)\r?\ndata: (.*)", stream.text)
    assert [name for name, _ in events] == ["state", "end"]
    assert json.loads(events[1][1])["job"]["state"] == "cancelled"


def test_job_fields_without_a_place_on_the_page_are_still_shown() -> None:
    class WiderView(JobView):
        failed_cells: list[dict[str, Any]] = Field(default_factory=list)

    view = WiderView(
        id="job_1",
        state="completed",
        created_at=datetime.now(tz=UTC),
        failed_cells=[{"model": "smol", "benchmark": "bbq", "error_rate": 0.5}],
    )
    extras = {column.name: value for column, value in extra_fields(view)}
    assert extras["failed_cells"] == [{"model": "smol", "benchmark": "bbq", "error_rate": 0.5}]
    assert "id" not in extras  # laid out on the page
