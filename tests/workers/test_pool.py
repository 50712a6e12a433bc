"""EnginePool on a real local Ray (2 CPUs) with the deterministic fake engine, and with the real hf engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from fake_engine import FakeEngine, fake_engine_factory

from schemas.errors import EngineFailure
from schemas.inference import EngineConfig, GenerateRequest, ScoreRequest
from workers.cluster import ensure_ray, shutdown_ray
from workers.engine import Engine
from workers.pool import EnginePool, PoolCancelled, PoolProgress

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # every test here starts Ray actors


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    shutdown_ray()  # another module may have left this process connected elsewhere
    ensure_ray(num_cpus=2, object_store_memory=100 * 1024**2)
    yield
    shutdown_ray()


def fake_config(**options: object) -> EngineConfig:
    return EngineConfig(model_path="fake-model", engine="hf", options=dict(options))


def score_requests(n: int) -> list[ScoreRequest]:
    # Prompts and continuations of different lengths, so every result differs from its neighbours.
    return [ScoreRequest(f"prompt {i} " + "x" * (i % 7), (" (a)", " (b)", " yes" * (1 + i % 3))) for i in range(n)]


def batches_served(log_dir: Path) -> dict[int, int]:
    """Batches each actor process really ran (pid -> count), from the fake engine's logs."""
    return {int(p.stem): len(p.read_text().splitlines()) for p in log_dir.glob("*.log")}


def test_score_is_complete_and_ordered_across_two_actors(tmp_path: Path) -> None:
    config = fake_config(log_dir=str(tmp_path))
    requests = score_requests(203)
    with EnginePool(config, num_actors=2, engine_factory=fake_engine_factory, batch_size=7) as pool:
        results = pool.score(requests)
        infos = pool.info()
    assert results == FakeEngine(fake_config()).score(requests)
    served = batches_served(tmp_path)
    assert sorted(served) == sorted(info.pid for info in infos)
    assert len(served) == 2, "both actors should have served batches"
    assert sum(served.values()) == 29  # ceil(203 / 7): every batch ran exactly once
    assert all(info.engine_class == "FakeEngine" and info.node_id for info in infos)


def test_generate_is_ordered() -> None:
    requests = [GenerateRequest(prompt=f"question {i}?", seed=i, max_new_tokens=64) for i in range(50)]
    with EnginePool(fake_config(), num_actors=2, engine_factory=fake_engine_factory, batch_size=4) as pool:
        results = pool.generate(requests)
    assert [r.text for r in results] == [f"seed={r.seed} tail={r.prompt[-6:]!r}" for r in requests]


def test_empty_request_list_returns_empty() -> None:
    with EnginePool(fake_config(), engine_factory=fake_engine_factory) as pool:
        assert pool.score([]) == []


def test_killed_actor_is_replaced_and_its_batches_retried(tmp_path: Path) -> None:
    config = fake_config(delay_s=0.05, log_dir=str(tmp_path))
    requests = score_requests(120)
    events: list[PoolProgress] = []
    with EnginePool(config, num_actors=2, engine_factory=fake_engine_factory, batch_size=3) as pool:
        victim = pool.actors[0]
        victim_pid = pool.info()[0].pid

        def kill_once(progress: PoolProgress) -> None:
            events.append(progress)
            if len(events) == 2:
                ray.kill(victim, no_restart=True)

        results = pool.score(requests, progress=kill_once)
        pids_after = {info.pid for info in pool.info()}
    assert results == FakeEngine(fake_config()).score(requests)
    assert events[-1].retries >= 1, "the killed actor's in-flight batches must have been retried"
    assert pool.actors[0] is not victim
    assert victim_pid not in pids_after
    served = batches_served(tmp_path)
    assert victim_pid in served
    assert len(served) == 3  # the victim, its surviving peer and the replacement


def test_lost_batches_beyond_max_retries_fail_the_call() -> None:
    config = fake_config(delay_s=0.2)
    with EnginePool(config, num_actors=1, engine_factory=fake_engine_factory, batch_size=2, max_retries=0) as pool:
        victim = pool.actors[0]

        def kill_first(progress: PoolProgress) -> None:
            ray.kill(victim, no_restart=True)

        with pytest.raises(EngineFailure, match="giving up after max_retries=0"):
            pool.score(score_requests(20), progress=kill_first)


def test_engine_exception_fails_the_call_with_the_engines_message() -> None:
    requests = [*score_requests(10), ScoreRequest("please FAIL here", (" a",)), *score_requests(10)]
    with EnginePool(fake_config(), engine_factory=fake_engine_factory, batch_size=4, max_retries=5) as pool:
        with pytest.raises(EngineFailure, match=r"EngineError: fake engine refuses prompt 'please FAIL here'") as info:
            pool.score(requests)
        assert "batch 2 of 6" in info.value.message
        # The pool stays usable: a deterministic failure is not an actor failure.
        assert pool.score(score_requests(3)) == FakeEngine(fake_config()).score(score_requests(3))


def test_engine_that_cannot_load_fails_construction() -> None:
    with pytest.raises(EngineFailure, match=r"could not be started: .*fail_init is set"):
        EnginePool(fake_config(fail_init=True), engine_factory=fake_engine_factory, startup_timeout_s=120)


def test_progress_counts_are_monotonic_and_complete() -> None:
    events: list[PoolProgress] = []
    requests = score_requests(50)
    with EnginePool(fake_config(), num_actors=2, engine_factory=fake_engine_factory, batch_size=6) as pool:
        results = pool.score(requests, progress=events.append)
    assert len(events) == 9  # ceil(50 / 6) batches, one event each
    done = [e.prompts_done for e in events]
    tokens = [e.tokens_processed for e in events]
    assert done == sorted(done)
    assert len(set(done)) == len(done)
    assert tokens == sorted(tokens)
    last = events[-1]
    assert (last.prompts_done, last.prompts_total, last.batches_done, last.batches_total) == (50, 50, 9, 9)
    assert last.tokens_processed == sum(r.prompt_tokens + r.continuation_tokens for r in results)
    assert last.tokens_per_s > 0
    assert (last.kind, last.retries) == ("score", 0)


def test_cancellation_stops_dispatching(tmp_path: Path) -> None:
    config = fake_config(delay_s=0.1, log_dir=str(tmp_path))
    stop = threading.Event()

    def cancel_after_two(progress: PoolProgress) -> None:
        if progress.batches_done >= 2:
            stop.set()

    with EnginePool(config, num_actors=2, engine_factory=fake_engine_factory, batch_size=2) as pool:
        with pytest.raises(PoolCancelled) as info:
            pool.score(score_requests(100), progress=cancel_after_two, cancelled=stop.is_set)
        assert info.value.prompts_done < 100
        # Still usable, and the cancelled call's queued batches do not run before the next call's.
        assert len(pool.score(score_requests(4))) == 4
    # 50 batches were asked for; at the flag, 2 had finished and at most 2 per actor were in flight
    # (running ones finish, queued ones are cancelled), plus the 2 batches of the follow-up call.
    assert sum(batches_served(tmp_path).values()) <= 2 + 2 * 2 + 2


def test_closed_pool_refuses_work() -> None:
    pool = EnginePool(fake_config(), engine_factory=fake_engine_factory)
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(EngineFailure, match="closed"):
        pool.score(score_requests(1))


def test_invalid_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        EnginePool(fake_config(), engine_factory=fake_engine_factory, batch_size=0)


def test_pool_with_real_hf_engine_matches_in_process_engine(hf_engine: Engine) -> None:
    config = hf_engine.config  # the in-process engine's own config: same model, dtype and device
    requests = [
        ScoreRequest(
            f"\n\nHuman: Is {n} an even number? Answer yes or no.\n\nAssistant: The answer is", (" yes", " no")
        )
        for n in range(12)
    ]
    expected = hf_engine.score(requests)
    with EnginePool(config, num_actors=1, batch_size=5) as pool:
        got = pool.score(requests)
        (info,) = pool.info()
    assert (info.engine, info.dtype) == ("hf", "float32")
    for want, have in zip(expected, got, strict=True):
        assert have.prompt_tokens == want.prompt_tokens
        for w, h in zip(want.continuations, have.continuations, strict=True):
            assert h.token_ids == w.token_ids
            # float32 on the same CPU; batches are cut differently, hence a tolerance and not equality
            assert h.logprob == pytest.approx(w.logprob, abs=1e-4)
