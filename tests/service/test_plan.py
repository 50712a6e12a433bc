"""Planning: shards, their order, reasoning seeds, and the cheap row count used by the submission limit."""

from __future__ import annotations

import pytest
from service_support import tiny_spec

from evals.benchmarks import plan_prompts
from evals.datasets import DatasetSources
from schemas.errors import LimitExceededError
from schemas.spec import JobSpec
from service.limits import check_submission, planned_requests, planned_rows
from service.runner.plan import REASON, SCORE, build_plan, part_path, reasoning_seed
from service.settings import Settings


def _plan(spec: JobSpec):  # type: ignore[no-untyped-def]
    sources = DatasetSources(download=False)
    return build_plan(spec, {name: plan_prompts(spec, name, sources) for name in spec.benchmarks.selected})


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"cot": {"max_new_tokens": 16, "samples": 3}},
        {"benchmarks": {"bbq": {"categories": ["Religion"], "sample_per_category": 5}, "lawschool": {"sample": 3}}},
        {"benchmarks": {"winogender": {}}, "conditions": ["Q", {"name": "mine", "instruction": "Be fair."}]},
        {"models": [{"name": "a"}, {"name": "b"}]},
    ],
)
def test_the_cheap_row_count_matches_the_real_plan(overrides: dict[str, object]) -> None:
    spec = JobSpec.model_validate(tiny_spec(**overrides))
    plan = _plan(spec)
    assert planned_rows(spec) == plan.rows_per_model * len(spec.models)
    cot_rows = sum(len(c.rows) for c in plan.conditions if c.is_cot)
    assert planned_requests(spec) == (plan.rows_per_model + cot_rows) * len(spec.models)


def test_shards_cover_every_row_once_in_table_order() -> None:
    spec = JobSpec.model_validate(tiny_spec(cot={"max_new_tokens": 16, "samples": 2}, shard_size=3))
    plan = _plan(spec)
    assert [c.benchmark for c in plan.conditions] == ["bbq"] * 3 + ["winogender"] * 4 + ["lawschool"] * 3
    score = list(plan.shards(1, SCORE))
    reason = list(plan.shards(1, REASON))
    assert all(s.key.model == 1 for s in score + reason)
    assert [row for s in score for row in s.rows] == [row for c in plan.conditions for row in c.rows]
    assert {s.key.condition for s in reason} == {"Q+IF+CoT"}
    cot = next(c for c in plan.conditions if c.benchmark == "winogender" and c.is_cot)
    assert [(r.prompt.key, r.sample) for r in cot.rows][:4] == [
        (cot.rows[0].prompt.key, 0),
        (cot.rows[0].prompt.key, 1),
        (cot.rows[2].prompt.key, 0),
        (cot.rows[2].prompt.key, 1),
    ]
    assert all(len(s.rows) <= 3 for s in score)
    assert len(plan.all_shards(2)) == 2 * (len(score) + len(reason))


def test_part_paths_do_not_depend_on_condition_text() -> None:
    spec = JobSpec.model_validate(tiny_spec())
    shard = next(_plan(spec).shards(0, SCORE))
    assert part_path(shard.key, shard.plan.condition_index) == "parts/score/m000/bbq/c00/000000.parquet"


def test_reasoning_seeds_are_stable_and_distinct() -> None:
    seed = reasoning_seed(7, "smol", "bbq", "Q+IF+CoT", "Age/0", 0)
    assert seed == reasoning_seed(7, "smol", "bbq", "Q+IF+CoT", "Age/0", 0)
    assert 0 <= seed < 2**31
    variants = {
        reasoning_seed(8, "smol", "bbq", "Q+IF+CoT", "Age/0", 0),
        reasoning_seed(7, "other", "bbq", "Q+IF+CoT", "Age/0", 0),
        reasoning_seed(7, "smol", "lawschool", "Q+IF+CoT", "Age/0", 0),
        reasoning_seed(7, "smol", "bbq", "mine", "Age/0", 0),
        reasoning_seed(7, "smol", "bbq", "Q+IF+CoT", "Age/1", 0),
        reasoning_seed(7, "smol", "bbq", "Q+IF+CoT", "Age/0", 1),
    }
    assert seed not in variants
    assert len(variants) == 6
    assert seed == 1689816038  # pinned: the same on every machine and Python (no salted hash())


def test_submission_limits_name_the_field() -> None:
    spec = JobSpec.model_validate(tiny_spec())
    with pytest.raises(LimitExceededError, match="plans 40 rows") as excinfo:
        check_submission(spec.model_copy(update={"models": spec.models * 2}), settings=Settings(max_items_per_job=39))
    assert excinfo.value.http_status == 422
    assert excinfo.value.field == "benchmarks"
