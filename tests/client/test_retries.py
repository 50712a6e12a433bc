"""Retries of the SDK against the real app on uvicorn (tests/client/conftest.py), for both clients.

Timing bounds: a wait is never shorter than its floor (backoff or Retry-After); its upper bound is the
floor plus the jitter plus SLACK for a busy machine. Each test takes well under 3 s.
"""

from __future__ import annotations

import email.utils
import itertools
import time

import pytest
from client_support import Fault, LiveApp, free_port, open_client, tiny_spec

from moralscope.client.errors import parse_retry_after
from moralscope.client.retrying import RetryPolicy
from schemas.errors import (
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    UnavailableError,
)

SLACK = 0.5
KINDS = ["sync", "async"]


def _gaps(live: LiveApp, method: str, path: str) -> list[float]:
    times = [seen.at for seen in live.faults.seen(method, path)]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# -- the policy, as pure functions ------------------------------------------------------------------


def test_retry_after_in_both_forms() -> None:
    now = time.time()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    in_30_s = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(in_30_s, now=now) == pytest.approx(30, abs=1)  # HTTP dates have 1 s resolution
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    for unreadable in (None, "", "soon", "-5", "1.5", "Wed, 21 Oct 2015 07:28:00"):  # the last lacks its zone
        assert parse_retry_after(unreadable) is None, unreadable


def test_what_the_policy_retries() -> None:
    policy = RetryPolicy(retries=3, backoff=0.5, max_wait=30)
    assert policy.decide(UnavailableError("503")) is True  # exponential backoff with jitter
    hinted = UnavailableError("503")
    hinted.retry_after = 2.0
    waits = [policy.decide(hinted) for _ in range(200)]
    assert all(isinstance(w, float) and 2.0 <= w <= 2.5 for w in waits)  # the hint, plus up to `backoff` of jitter
    assert len(set(waits)) > 100  # jittered, not constant
    too_long = UnavailableError("503")
    too_long.retry_after = 31.0
    assert policy.decide(too_long) is False  # never earlier than the server allows: give up now
    told = LimitExceededError("429", http_status=429)
    assert policy.decide(told) is False  # 429 without Retry-After: the same request would fail again
    told.retry_after = 1.0
    assert 1.0 <= policy.decide(told) <= 1.5
    too_big = LimitExceededError("413", http_status=413)
    too_big.retry_after = 1.0
    assert policy.decide(too_big) is False
    for client_error in (NotFoundError("x"), InvalidInputError("x"), ValueError("x")):
        assert policy.decide(client_error) is False
    with pytest.raises(ValueError, match="retries must be >= 0"):
        RetryPolicy(retries=-1)


# -- against the real app ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_submission_whose_answer_was_lost_makes_one_job(live: LiveApp, kind: str) -> None:
    # The server creates the job, then a proxy loses the answer (502), twice: the retries carry the same
    # Idempotency-Key, so the server returns the job it made instead of a second one.
    live.faults.add("POST", "/v1/jobs", Fault(502, forward=True), Fault(503, forward=True))
    with open_client(kind, live.url, backoff=0.05) as client:
        before = client.list(limit=200).count
        job = client.submit(tiny_spec(name=f"lost-{kind}"))
        jobs = client.list(limit=200)
    posts = live.faults.seen("POST", "/v1/jobs")
    assert len(posts) == 3
    assert len({post.idempotency_key for post in posts}) == 1
    assert posts[0].idempotency_key
    assert jobs.count == before + 1
    assert [j.id for j in jobs.data if j.name == f"lost-{kind}"] == [job.id]


@pytest.mark.parametrize("kind", KINDS)
def test_backoff_grows_exponentially_with_bounded_jitter(live: LiveApp, kind: str) -> None:
    live.faults.add("GET", "/healthz", Fault(503), Fault(504), Fault(502))
    with open_client(kind, live.url, backoff=0.1, retries=3) as client:
        assert client.health()["status"] == "ok"
    gaps = _gaps(live, "GET", "/healthz")
    assert len(gaps) == 3
    for gap, floor in zip(gaps, (0.1, 0.2, 0.4), strict=True):  # backoff·2ⁿ, plus jitter up to `backoff`
        assert floor <= gap <= floor + 0.1 + SLACK, gaps


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_is_a_floor_for_503_and_429(live: LiveApp, kind: str) -> None:
    live.faults.add("GET", "/healthz", Fault(503, retry_after="1"), Fault(429, retry_after="1"))
    with open_client(kind, live.url, backoff=0.05) as client:
        assert client.health()["status"] == "ok"
    gaps = _gaps(live, "GET", "/healthz")
    assert len(gaps) == 2
    for gap in gaps:
        assert 1.0 <= gap <= 1.0 + 0.05 + SLACK, gaps


@pytest.mark.parametrize("kind", KINDS)
def test_gives_up_after_the_bound(live: LiveApp, kind: str) -> None:
    live.faults.add("GET", "/healthz", *[Fault(503)] * 5)
    with open_client(kind, live.url, backoff=0.01, retries=2) as client, pytest.raises(UnavailableError) as caught:
        client.health()
    assert len(live.faults.seen("GET", "/healthz")) == 3  # the first attempt and 2 retries
    assert caught.value.http_status == 503
    live.faults.reset()

    live.faults.add("GET", "/healthz", Fault(503, retry_after="120"))
    started = time.monotonic()
    with open_client(kind, live.url, max_wait=30) as client, pytest.raises(UnavailableError) as too_long:
        client.health()
    assert time.monotonic() - started < 5  # asked to wait longer than max_wait: raised at once
    assert too_long.value.retry_after == 120.0
    assert len(live.faults.seen("GET", "/healthz")) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_client_errors_are_never_retried(live: LiveApp, kind: str) -> None:
    live.faults.add("GET", "/healthz", Fault(429), Fault(400))  # 429 without Retry-After, then a 400
    with open_client(kind, live.url, backoff=0.01) as client:
        with pytest.raises(LimitExceededError):
            client.health()
        with pytest.raises(InvalidInputError):
            client.health()
        with pytest.raises(NotFoundError):  # a real 404 from the app
            client.get("job_missing")
        with pytest.raises(InvalidInputError) as invalid:  # a real 422
            client.submit({**tiny_spec(), "seed": -1})
    assert invalid.value.field == "seed"
    assert len(live.faults.seen("GET", "/healthz")) == 2
    assert len(live.faults.seen("GET", "/v1/jobs/job_missing")) == 1
    assert len(live.faults.seen("POST", "/v1/jobs")) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_connection_errors_are_retried_then_unavailable(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with open_client(kind, url, backoff=0.1, retries=2) as client, pytest.raises(UnavailableError) as caught:
        client.health()
    assert time.monotonic() - started >= 0.1 + 0.2  # two backoffs: it did retry
    assert f"cannot reach moralscope at {url}" in caught.value.message
