"""Bit-for-bit invariance of the hf engine (float32, CPU) on real prompts of every benchmark and condition.

A job resumed after a restart meets a cold prefix cache and other batches, so every score must be the
same bits however it is batched and whatever is cached: with the cache off, on (cold, then warm, also
after generation filled it for the CoT answers), with a budget so small that it evicts all the time, and
for each request scored alone. Scores are compared with ``==``. The prompts are the real ones (datasets,
``evals`` rendering, the embedded model's chat template), CoT answers included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evals.benchmarks import plan_prompts
from evals.datasets import DatasetSources
from evals.prompts import EvalPrompt
from evals.scoring import flatten_forms
from schemas.inference import EngineConfig, GenerateRequest, ScoreRequest, ScoreResult
from schemas.spec import JobSpec

pytestmark = pytest.mark.slow

CONDITIONS = ["Q", "Q+IF", "Q+IF+CoT", "Q+MatchStats"]


@pytest.fixture(scope="module")
def prompts(data_dir: Path) -> dict[str, list[EvalPrompt]]:
    """(benchmark, condition) → prompts: 4 BBQ rows, 3 Winogender occupations, 2 law students × 2 races."""
    job = JobSpec.model_validate(
        {
            "models": [{"name": "smollm2-135m-instruct"}],
            "benchmarks": {
                "bbq": {"categories": ["Age", "Religion"], "limit": 2},
                "winogender": {"limit": 3},
                "lawschool": {"limit": 2},
            },
            "conditions": CONDITIONS,
        }
    )
    sources = DatasetSources(data_dir, download=False)
    planned = {}
    for benchmark in ("bbq", "winogender", "lawschool"):
        for condition, rows in plan_prompts(job, benchmark, sources).items():
            planned[f"{benchmark} {condition}"] = rows
    assert len(planned) == 10  # MatchStats is Winogender's only
    return planned


def engine_with(hf_engine: Any, **options: Any) -> Any:
    """Another engine on the same weights (already made batch-invariant) with other options."""
    from workers.hf import HFEngine

    config = EngineConfig(model_path=hf_engine.config.model_path, device="cpu", options=options)
    return HFEngine(config, hf_engine.renderer, model=hf_engine.model)


def reasoning_requests(hf_engine: Any, prompts: dict[str, list[EvalPrompt]]) -> dict[str, list[GenerateRequest]]:
    return {
        name: [
            GenerateRequest(hf_engine.render(p.turns.reasoning_dialogue()), 12, stop=hf_engine.stop_strings, seed=i)
            for i, p in enumerate(rows)
        ]
        for name, rows in prompts.items()
        if rows[0].is_cot
    }


def score_requests(
    hf_engine: Any, prompts: dict[str, list[EvalPrompt]], reasoning: dict[str, list[str]]
) -> dict[str, list[ScoreRequest]]:
    out = {}
    for name, rows in prompts.items():
        texts = reasoning.get(name, [None] * len(rows))
        out[name] = [
            ScoreRequest(hf_engine.render(p.turns.answer_dialogue(text)), flatten_forms(p.candidates))
            for p, text in zip(rows, texts, strict=True)
        ]
    return out


def values(results: list[ScoreResult]) -> list[tuple[float, ...]]:
    assert all(r.error is None for r in results)
    return [tuple(c.logprob for c in r.continuations) for r in results]


def test_scores_and_samples_are_the_same_bits_with_the_cache_on_off_alone_and_evicting(
    hf_engine: Any, prompts: dict[str, list[EvalPrompt]]
) -> None:
    off, on = engine_with(hf_engine, prefix_cache=False), engine_with(hf_engine, max_batch_tokens=512)
    assert on.batch_invariant
    assert on.forward.cache is not None
    assert on.forward.cache.bytes == 0

    # Reasoning: the same text with the cache off and on; on, it stays cached for the answers.
    generate = reasoning_requests(hf_engine, prompts)
    reasoning = {name: [r.text for r in off.generate(batch)] for name, batch in generate.items()}
    for name, batch in generate.items():
        sampled = on.generate(batch)
        assert [r.text for r in sampled] == reasoning[name]
        assert all(r.computed_tokens is not None and r.computed_tokens <= r.tokens_requested for r in sampled)

    requests = score_requests(hf_engine, prompts, reasoning)
    reference = {name: values(off.score(batch)) for name, batch in requests.items()}
    requested = computed = 0
    for name, batch in requests.items():  # cold then warming up, one call per benchmark × condition
        results = on.score(batch)
        assert values(results) == reference[name], name
        requested += sum(r.tokens_requested for r in results)
        computed += sum(r.tokens_computed for r in results)
        if "CoT" in name:  # the reasoning prompt and its sample were cached by generation
            assert all(r.tokens_computed < r.prompt_tokens / 2 for r in results), name
    assert computed < 0.6 * requested  # conditions share their question, chat prompts their system prompt

    everything = [r for batch in requests.values() for r in batch]
    expected = [v for name in requests for v in reference[name]]
    warm = on.score(everything)  # all cached: only each context's last token and the candidates run
    assert values(warm) == expected
    assert sum(r.tokens_computed for r in warm) < 0.2 * sum(r.tokens_requested for r in warm)

    tiny = engine_with(hf_engine, prefix_cache_mb=3, max_batch_tokens=200)  # ~65 tokens of keys and values
    assert values(tiny.score(everything[::-1])) == expected[::-1]
    assert tiny.stats["cache_evictions"] > 0
    assert tiny.stats["cache_peak_bytes"] <= 3 * 2**20

    alone = [values(off.score([r]))[0] for r in everything[::3]]
    assert alone == expected[::3]
