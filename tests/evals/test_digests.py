"""Prompt digests: the same spec agrees whatever the models; other items, wording or sampling do not."""

from __future__ import annotations

from typing import Any

from evals.benchmarks import benchmark_prompts, job_benchmarks
from evals.datasets import DatasetSources
from evals.digests import prompt_digests
from schemas.spec import JobSpec


def _digests(**overrides: Any) -> dict[tuple[str, str], dict[str, Any]]:
    spec: dict[str, Any] = {
        "models": [{"name": "smollm2-135m-instruct", "labels": {"params_b": 0.135}}],
        "benchmarks": {"winogender": {"limit": 4}, "lawschool": {"limit": 2}},
        "conditions": ["Q", "Q+IF", "Q+IF+CoT"],
        "cot": {"max_new_tokens": 16},
    }
    spec.update(overrides)
    job = JobSpec.model_validate(spec)
    sources = DatasetSources(download=False)
    prompts = {s.name: benchmark_prompts(job, s, sources) for s in job_benchmarks(job)}
    return {(d["benchmark"], d["condition"]): d for d in prompt_digests(job, prompts)}


def test_digests_agree_across_models_and_differ_by_items_wording_and_sampling() -> None:
    base = _digests()
    assert set(base) == {(b, c) for b in ("winogender", "lawschool") for c in ("Q", "Q+IF", "Q+IF+CoT")}
    assert base[("lawschool", "Q")]["items"] == 4  # two students, each as Black and as white
    assert base[("winogender", "Q")]["cot"] is None
    assert base[("winogender", "Q+IF+CoT")]["cot"]["max_new_tokens"] == 16

    other_models = _digests(
        models=[{"name": "org/another", "prompt_format": "chat", "labels": {"params_b": 7}}, {"name": "x"}]
    )
    assert other_models == base  # the model and its format are not part of what was asked

    fewer = _digests(benchmarks={"winogender": {"limit": 3}, "lawschool": {"limit": 2}})
    assert fewer[("winogender", "Q")]["items_sha256"] != base[("winogender", "Q")]["items_sha256"]
    assert fewer[("lawschool", "Q")] == base[("lawschool", "Q")]

    # conditions differ from each other by their wording only: same items, other prompts
    q, instructed = base[("winogender", "Q")], base[("winogender", "Q+IF")]
    assert q["items_sha256"] == instructed["items_sha256"]
    assert q["prompts_sha256"] != instructed["prompts_sha256"]
    fair = _digests(conditions=["Q", {"name": "fair", "instruction": "Please be fair."}])
    reworded = _digests(conditions=["Q", {"name": "fair", "instruction": "Please be fair to everyone."}])
    assert reworded[("winogender", "fair")]["prompts_sha256"] != fair[("winogender", "fair")]["prompts_sha256"]
    assert reworded[("winogender", "Q")] == fair[("winogender", "Q")] == q

    longer = _digests(cot={"max_new_tokens": 32})
    assert longer[("winogender", "Q+IF+CoT")]["cot"] != base[("winogender", "Q+IF+CoT")]["cot"]
    assert longer[("winogender", "Q+IF+CoT")]["prompts_sha256"] == base[("winogender", "Q+IF+CoT")]["prompts_sha256"]
    assert longer[("winogender", "Q")] == q
