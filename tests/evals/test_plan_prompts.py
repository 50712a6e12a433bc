"""The runner's view: every benchmark module plugs into evals.benchmarks the same way."""

from __future__ import annotations

import pytest

from evals import get_benchmark, plan_prompts
from evals.datasets import DatasetSources
from schemas.spec import JobSpec


def test_plan_prompts_of_a_small_job() -> None:
    job = JobSpec.model_validate(
        {
            "models": [{"name": "m"}],
            "benchmarks": {
                "bbq": {"categories": ["Age", "Religion"], "limit": 4},
                "winogender": {"limit": 5},
                "lawschool": {"sample": 6},
            },
            "conditions": ["Q", "Q+IF+CoT", "Q+MatchStats", {"name": "fair", "instruction": "Be fair."}],
        }
    )
    sources = DatasetSources(download=False)
    bbq = plan_prompts(job, "bbq", sources)
    assert list(bbq) == ["Q", "Q+IF+CoT", "fair"]  # Q+MatchStats applies to Winogender only
    assert [len(prompts) for prompts in bbq.values()] == [8, 8, 8]
    assert [p.is_cot for p in bbq["Q+IF+CoT"]] == [True] * 8
    winogender = plan_prompts(job, "winogender", sources)
    assert list(winogender) == ["Q", "Q+IF+CoT", "Q+MatchStats", "fair"]
    assert all(len(prompts) == 5 for prompts in winogender.values())
    lawschool = plan_prompts(job, "lawschool", sources)
    assert all(len(prompts) == 12 for prompts in lawschool.values())
    for prompts in (*bbq.values(), *winogender.values(), *lawschool.values()):
        assert len({p.key for p in prompts}) == len(prompts)


def test_every_benchmark_has_the_same_shape() -> None:
    for name in ("bbq", "winogender", "lawschool"):
        benchmark = get_benchmark(name)
        assert callable(benchmark.load_items)
        assert callable(benchmark.render)
        assert callable(benchmark.sample_columns)
    with pytest.raises(ValueError, match="unknown benchmark 'mmlu'"):
        get_benchmark("mmlu")
