"""EnginePool on a real local Ray (2 CPUs) with the deterministic fake engine, and with the real hf engine."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from schemas.errors import EngineFailure
from schemas.inference import EngineConfig, GenerateRequest, ScoreRequest
from tests.support.fake_engine import FakeEngine, fake_engine_factory, fake_text
from workers.cluster import ensure_ray, shutdown_ray
from workers.deadlines import DeadlinePolicy
from workers.engine import Engine
from workers.placement import Reservation
from workers.pool import Completion, EnginePool, PoolCancelled, PoolProgress

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # every test here starts Ray actors


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    shutdown_ray()  # another module may have left this process connected elsewhere
    ensure_ray(num_cpus=2, object_store_memory=100 * 1024**2)
    yield
    shutdown_ray()


def fake_config(**options: object) -> EngineConfig:
    return EngineConfig(model_path="fake-model", engine="hf", options=dict(options))


def score_requests(n: int, start: int = 0) -> list[ScoreRequest]:
    # Prompts and continuations of different lengths, so every result differs from its neighbours.
    return [
        ScoreRequest(f"prompt {i} " + "x" * (i % 7), (" (a)", " (b)", " yes" * (1 + i % 3)))
        for i in range(start, start + n)
    ]


def expected(requests: list[ScoreRequest]) -> list[tuple[object, ...]]:
    return [r.continuations for r in FakeEngine(fake_config(cache=False)).score(requests)]


def served(log_dir: Path) -> dict[int, list[list[str]]]:
    """What each actor process really ran (pid -> batches as ``start end kind size first-prompt-sha``)."""
    return {int(p.stem): [line.split() for line in p.read_text().splitlines()] for p in log_dir.glob("*.log")}


def poll_all(pool: EnginePool, count: int, timeout_s: float = 120) -> list[Completion]:
    done: list[Completion] = []
    deadline = time.monotonic() + timeout_s
    while len(done) < count and time.monotonic() < deadline:
        done += pool.poll(0.1)
    assert len(done) == count
    return done


def test_score_is_complete_and_ordered_across_two_actors(tmp_path: Path) -> None:
    requests = score_requests(203)
    with EnginePool(
        fake_config(log_dir=str(tmp_path)), num_actors=2, engine_factory=fake_engine_factory, batch_size=7
    ) as pool:
        results = pool.score(requests)
        infos = pool.info()
    assert [r.continuations for r in results] == expected(requests)
    assert all(r.error is None for r in results)
    batches = served(tmp_path)
    assert sorted(batches) == sorted(info.pid for info in infos)
    assert all(batches.values()), "both actors should have served batches"
    assert sum(len(b) for b in batches.values()) == 29  # ceil(203 / 7): every batch ran exactly once
    assert all(info.engine_class == "FakeEngine" and info.node_id for info in infos)


def test_generate_is_ordered() -> None:
    requests = [GenerateRequest(prompt=f"question {i}?", seed=i, max_new_tokens=64) for i in range(50)]
    with EnginePool(fake_config(), num_actors=2, engine_factory=fake_engine_factory, batch_size=4) as pool:
        results = pool.generate(requests)
        assert pool.generate([]) == []
    assert [r.text for r in results] == [fake_text(r) for r in requests]


def test_streaming_completions_arrive_as_batches_finish_with_their_tags() -> None:
    """No barrier: a slow batch does not hold back the batches that finish after it was sent."""
    config = fake_config(delay_per_request_s=0.05)
    with EnginePool(config, num_actors=2, engine_factory=fake_engine_factory, max_in_flight_per_actor=1) as pool:
        slow = pool.submit("score", score_requests(40), tag="slow")
        quick = [pool.submit("score", score_requests(2, 100 + 2 * i), tag=i) for i in range(6)]
        done = poll_all(pool, 7)
    order = [c.ticket for c in done]
    assert order.index(slow) == 6, "the quick batches on the other actor must finish first"
    assert {c.tag for c in done} == {"slow", *range(6)}
    for completion in done:
        assert completion.kind == "score"
        assert completion.errors == 0
        assert completion.engine_seconds > 0
    assert sorted(order[:6]) == quick


def test_affinity_sends_a_keys_batches_to_one_actor_back_to_back(tmp_path: Path) -> None:
    config = fake_config(log_dir=str(tmp_path), delay_s=0.05)
    firsts: dict[tuple[int, int], str] = {}
    with EnginePool(config, num_actors=2, engine_factory=fake_engine_factory) as pool:
        pool.score(score_requests(4, 1000))  # warm both actors up, so that neither lags behind at the start
        for wave in range(2):  # two waves of two item blocks, each block under three "conditions"
            for block in (2 * wave, 2 * wave + 1):
                for condition in range(3):
                    requests = [
                        ScoreRequest(f"{r.prompt} c{condition}", r.continuations) for r in score_requests(3, 10 * block)
                    ]
                    firsts[(block, condition)] = hashlib.sha256(requests[0].prompt.encode()).hexdigest()[:12]
                    pool.submit("score", requests, affinity=("bbq", block), tag=(block, condition))
            poll_all(pool, 6)
        assert pool.counters.tokens_computed < pool.counters.tokens_requested  # the fake prefix cache hit
    actor_of = {batch[4]: pid for pid, batches in served(tmp_path).items() for batch in batches}
    for block in range(4):
        pids = {actor_of[firsts[(block, condition)]] for condition in range(3)}
        assert len(pids) == 1, f"block {block} ran on {pids}"


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
    assert [r.continuations for r in results] == expected(requests)
    assert events[-1].retries >= 1, "the killed actor's in-flight batch must have been retried"
    assert events[-1].errors == 0
    assert pool.counters.actors_replaced == 1
    assert victim_pid not in pids_after
    batches = served(tmp_path)
    assert victim_pid in batches
    # the victim and its surviving peer; the replacement too unless the peer finished first
    assert set(batches) <= {victim_pid} | pids_after
    assert len(batches) >= 2


def test_a_request_the_engine_raises_on_becomes_one_error_result() -> None:
    requests = [*score_requests(10), ScoreRequest("please FAIL here", (" a",)), *score_requests(10, 10)]
    config = fake_config(raise_on=["FAIL"])
    with EnginePool(config, engine_factory=fake_engine_factory, batch_size=8) as pool:
        results = pool.score(requests)
        assert pool.counters.actors_replaced == 0  # bisected inside the actor: nothing was lost
    errors = [i for i, r in enumerate(results) if r.error is not None]
    assert errors == [10]
    assert results[10].error == "EngineError: fake engine refuses prompt 'please FAIL here' (raise_on)"
    assert results[10].continuations == ()
    good = [r for i, r in enumerate(results) if i != 10]
    assert [r.continuations for r in good] == expected([r for i, r in enumerate(requests) if i != 10])


def test_error_results_of_the_engine_are_passed_through() -> None:
    requests = [*score_requests(3), ScoreRequest("cannot serve this", (" a",))]
    with EnginePool(fake_config(error_on=["cannot serve"]), engine_factory=fake_engine_factory) as pool:
        results = pool.score(requests)
    assert [r.error for r in results] == [None, None, None, "fake engine cannot serve this request (error_on)"]


def test_a_request_that_hangs_every_time_ends_as_an_error_result_after_retries(tmp_path: Path) -> None:
    requests = score_requests(8)
    requests[5] = ScoreRequest("this one HANGS", (" a",))
    config = fake_config(hang_on=["HANGS"], log_dir=str(tmp_path))
    deadlines = DeadlinePolicy(floor_s=1.5)
    with EnginePool(
        config, num_actors=2, engine_factory=fake_engine_factory, batch_size=4, max_retries=1, deadlines=deadlines
    ) as pool:
        results = pool.score(requests)
        counters = pool.counters
    assert [i for i, r in enumerate(results) if r.error] == [5]
    assert results[5].error is not None
    assert "deadline of 1.5s" in results[5].error
    good = [r for i, r in enumerate(results) if i != 5]
    assert [r.continuations for r in good] == expected([r for i, r in enumerate(requests) if i != 5])
    # 4 requests: retried once whole, then halved twice down to the hanging request, which fails once more
    assert (counters.timeouts, counters.retries, counters.splits) == (4, 1, 2)
    assert counters.actors_replaced == 4


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
    assert done == sorted(done)
    assert len(set(done)) == len(done)
    assert [e.tokens_processed for e in events] == sorted(e.tokens_processed for e in events)
    last = events[-1]
    assert (last.prompts_done, last.prompts_total, last.batches_done, last.batches_total) == (50, 50, 9, 9)
    assert last.tokens_processed == sum(r.prompt_tokens + r.continuation_tokens for r in results)
    assert last.tokens_computed == sum(r.tokens_computed for r in results) < last.tokens_processed
    assert last.cache_hit_rate is not None
    assert 0 < last.cache_hit_rate < 1
    assert last.tokens_per_s > 0
    assert (last.kind, last.retries, last.errors) == ("score", 0, 0)


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
        assert pool.outstanding == 0
        # Still usable, and the cancelled call's queued batches do not run before the next call's.
        assert len(pool.score(score_requests(4))) == 4
    # 50 batches were asked for; at the flag, 2 had finished and at most 2 per actor were in flight
    # (running ones finish, queued ones are cancelled), plus the 2 batches of the follow-up call.
    assert sum(len(b) for b in served(tmp_path).values()) <= 2 + 2 * 2 + 2


def test_reservations_are_granted_whole_and_in_turn() -> None:
    """Two one-CPU reservations fit the 2-CPU Ray; a third waits until one is released."""
    # the actors of earlier tests give their CPUs back asynchronously (slowly on a loaded machine)
    deadline = time.monotonic() + 120
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:  # type: ignore[no-untyped-call]
        time.sleep(0.5)
    first, second = Reservation(1, num_cpus=1, num_gpus=0), Reservation(1, num_cpus=1, num_gpus=0)
    third = Reservation(2, num_cpus=0.5, num_gpus=0)
    try:
        assert first.wait(60)
        assert second.wait(60)
        assert not third.wait(1.0)
        first.release()
        assert third.wait(30)
        with EnginePool(fake_config(), engine_factory=fake_engine_factory, reservation=third) as pool:
            assert pool.num_actors == 2
            assert len(pool.score(score_requests(5))) == 5
        assert third.released
    finally:
        for reservation in (first, second, third):
            reservation.release()


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
    expected_results = hf_engine.score(requests)
    with EnginePool(config, num_actors=1, batch_size=5) as pool:
        got = pool.score(requests)
        (info,) = pool.info()
    assert (info.engine, info.dtype) == ("hf", "float32")
    for want, have in zip(expected_results, got, strict=True):
        assert have.prompt_tokens == want.prompt_tokens
        for w, h in zip(want.continuations, have.continuations, strict=True):
            assert h.token_ids == w.token_ids
            # float32 on the same CPU; batches are cut differently, hence a tolerance and not equality
            assert h.logprob == pytest.approx(w.logprob, abs=1e-4)
