"""EngineHost in-process (no Ray): requests the engine raises on become error results, found by bisection."""

from __future__ import annotations

import pytest

from schemas.inference import EngineConfig, GenerateRequest, ScoreRequest
from tests.support.fake_engine import fake_engine_factory
from workers.actor import EngineHost
from workers.deadlines import DeadlinePolicy


def test_bisection_isolates_every_request_that_raises() -> None:
    host = EngineHost(
        EngineConfig(model_path="fake", options={"raise_on": ["BAD"], "cache": False}), fake_engine_factory
    )
    prompts = [f"ok {i}" if i not in (2, 6) else f"BAD {i}" for i in range(8)]
    outcome = host.run_batch("score", [ScoreRequest(p, (" a",)) for p in prompts])
    assert [i for i, r in enumerate(outcome.results) if r.error] == [2, 6]
    assert outcome.raised == 2
    assert outcome.results[2].error == "EngineError: fake engine refuses prompt 'BAD 2' (raise_on)"
    alone = host.run_batch("score", [ScoreRequest("ok 0", (" a",))]).results[0]
    assert outcome.results[0] == alone
    generated = host.run_batch("generate", [GenerateRequest("BAD x"), GenerateRequest("fine")])
    assert [r.finish_reason for r in generated.results] == ["error", "stop"]


def test_deadlines_follow_measured_throughput_above_the_floor() -> None:
    policy = DeadlinePolicy(floor_s=5, factor=10)
    assert policy.deadline_s("score", 32) == 5  # nothing measured yet: the floor
    policy.observe("score", 10, 2.0)  # 0.2 s per request
    assert policy.deadline_s("score", 32) == pytest.approx(64.0)
    assert policy.deadline_s("score", 1) == 5
    assert policy.deadline_s("generate", 32) == 5  # kinds are measured apart
    with pytest.raises(ValueError, match="floor_s must be > 0"):
        DeadlinePolicy(floor_s=0)
