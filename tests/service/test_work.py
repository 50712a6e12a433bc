"""A model's work as batches (no Ray): affinity across conditions, reasoning first, each answer right after
its reasoning, error rows for failed reasoning, shards committed as they complete, resumption."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from service_support import tiny_spec

from evals.benchmarks import plan_prompts
from evals.datasets import DatasetSources
from schemas.inference import EngineConfig, GenerateResult
from schemas.spec import JobSpec
from service.db import open_database
from service.results import JobFiles
from service.runner.context import ModelToRun, RunContext
from service.runner.plan import REASON, SCORE, build_plan
from service.runner.work import ANSWER_PRIORITY, REASON_PRIORITY, SCORE_PRIORITY, ModelWork
from service.store import JobStore
from tests.support.fake_engine import CharTokenizer, FakeEngine
from workers.rendering import PromptRenderer


@pytest.fixture
def setting(tmp_path: Path) -> dict[str, Any]:
    spec = JobSpec.model_validate(tiny_spec(cot={"max_new_tokens": 16, "samples": 2}, shard_size=3))
    sources = DatasetSources(download=False)
    plan = build_plan(spec, {name: plan_prompts(spec, name, sources) for name in spec.benchmarks.selected})
    store = JobStore(open_database(f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    job, _ = store.create_job(owner="t", spec=spec, results_root=str(tmp_path / "results"))
    store.add_shards(job.id, [(s.key, len(s.rows)) for s in plan.all_shards(1)])
    commits: list[int] = []
    ctx = RunContext(
        store=store,
        settings=None,  # type: ignore[arg-type]  # not used by the work
        job_id=job.id,
        spec=spec,
        files=JobFiles(str(tmp_path / "results" / job.id)),
        check_stop=lambda: None,
        stop_requested=lambda: False,
        on_commit=lambda: commits.append(1),
    )
    model = ModelToRun(0, spec.models[0], None, PromptRenderer(CharTokenizer(), "human_assistant"))  # type: ignore[arg-type]
    return {"ctx": ctx, "plan": plan, "model": model, "store": store, "commits": commits}


def drain(work: ModelWork, engine: FakeEngine, fail: str | None = None) -> list[Any]:
    """Run every batch in submission order through an in-process engine; the batches, in order."""
    order = []
    while (batch := work.next_batch()) is not None:
        order.append(batch)
        if batch.kind == "generate":
            results: list[Any] = engine.generate(batch.requests)
            if fail:
                results = [
                    GenerateResult.failed("no") if fail in r.prompt else g
                    for r, g in zip(batch.requests, results, strict=True)
                ]
        else:
            results = engine.score(batch.requests)
        work.complete(batch, results)
    assert work.finished
    return order


def test_batches_are_keyed_by_item_block_and_answers_follow_their_reasoning(setting: dict[str, Any]) -> None:
    work = ModelWork(setting["ctx"], setting["model"], setting["plan"], set(), batch_size=4, block_items=2)
    order = drain(work, _engine())
    kinds = [(b.kind, b.priority) for b in order]
    first_plain = kinds.index(("score", SCORE_PRIORITY))
    # reasoning first, each answer as soon as its reasoning is back, the other scoring after
    assert set(kinds[:first_plain]) == {("generate", REASON_PRIORITY), ("score", ANSWER_PRIORITY)}
    assert set(kinds[first_plain:]) == {("score", SCORE_PRIORITY)}
    for before, after in itertools.pairwise(order):
        if after.priority == ANSWER_PRIORITY and before.kind == "generate":
            assert after.affinity == before.affinity  # the answer goes where its reasoning was generated
    keys = {(b.fill.shard.key.condition, b.affinity) for b in order}
    bbq_blocks = {a for c, a in keys if a[0] == "bbq"}
    for block in bbq_blocks:  # each block of items is served under every condition
        assert {c for c, a in keys if a == block} == {"Q", "Q+IF", "Q+IF+CoT"}
    shards = setting["store"].shards(setting["ctx"].job_id)
    assert all(s.state == "done" for s in shards)
    assert len(setting["commits"]) == len(shards)


def test_a_failed_reasoning_makes_its_answer_an_error_row_without_a_request(setting: dict[str, Any]) -> None:
    work = ModelWork(setting["ctx"], setting["model"], setting["plan"], set(), batch_size=4)
    order = drain(work, _engine(), fail="fill in the missing blank")
    answers = [
        b
        for b in order
        if b.kind == "score" and b.fill.shard.key.benchmark == "winogender" and b.fill.shard.plan.is_cot
    ]
    assert answers == []  # every Winogender reasoning failed: none of its answers was sent
    ctx = setting["ctx"]
    table = ctx.files.read_parquet(
        next(
            s.path
            for s in setting["store"].shards(ctx.job_id)
            if s.key.benchmark == "winogender" and s.key.condition == "Q+IF+CoT" and s.key.phase == SCORE
        )
    )
    assert all(e.startswith("the reasoning could not be generated: no") for e in table["error"].to_pylist())


def test_a_resumed_model_sends_only_what_is_left_and_reads_recorded_reasoning(setting: dict[str, Any]) -> None:
    first = ModelWork(setting["ctx"], setting["model"], setting["plan"], set(), batch_size=4)
    drain(first, _engine())
    done = {s.key for s in setting["store"].shards(setting["ctx"].job_id) if s.key.phase == REASON}
    resumed = ModelWork(setting["ctx"], setting["model"], setting["plan"], done, batch_size=4)
    order = drain(resumed, _engine())
    assert {b.kind for b in order} == {"score"}
    assert resumed.requests_done == resumed.requests_total


def test_answers_still_in_flight_are_not_sent_again_by_the_other_scoring(setting: dict[str, Any]) -> None:
    """As through a pool: reasoning comes back (and commits) while answers are still out; the other scoring
    that comes later must not take a CoT condition's rows again from the part this run just committed."""
    work = ModelWork(setting["ctx"], setting["model"], setting["plan"], set(), batch_size=4)
    engine, sent, out = _engine(), 0, []
    while not work.finished:
        while (batch := work.next_batch()) is not None:
            sent += len(batch.requests)
            if batch.kind == "generate":  # reasoning returns at once, scoring stays out
                work.complete(batch, engine.generate(batch.requests))
            else:
                out.append(batch)
        for batch in out:
            work.complete(batch, engine.score(batch.requests))
        out = []
    assert sent == work.requests_total  # every request once
    assert all(s.state == "done" for s in setting["store"].shards(setting["ctx"].job_id))


def _engine() -> FakeEngine:
    return FakeEngine(EngineConfig(model_path="fake", options={"cache": False}))


def test_batches_shrink_as_the_work_runs_out_only_when_several_actors_share_it() -> None:
    from service.runner.model_run import batch_limits

    assert batch_limits({REASON: 100, SCORE: 300}, 1) is None  # one actor: whole batches
    assert batch_limits({REASON: 100, SCORE: 300}, 2) == {"generate": 25, "score": 100}
    assert batch_limits({REASON: 0, SCORE: 3}, 4) == {"generate": 1, "score": 1}
