"""The hf engine on the real embedded model: scores against plain transformers, batching, tokenisation, sampling."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from schemas.dialogue import Dialogue, Turn, render_human_assistant
from schemas.inference import EngineConfig, GenerateRequest, ScoreRequest, ScoreResult
from workers.engine import EngineError

pytestmark = pytest.mark.slow

BBQ_FILES = ("Age", "Disability_status", "Nationality", "Physical_appearance", "Religion", "Sexual_orientation")


@pytest.fixture(scope="module")
def requests(hf_engine: Any, data_dir: Path) -> list[ScoreRequest]:
    """55 prompts of mixed formats and lengths, each with candidates that share their first tokens."""
    rows = []
    for name in BBQ_FILES:
        lines = (data_dir / "bbq" / "data" / f"{name}.jsonl").read_text().splitlines()
        rows += [json.loads(line) for line in lines[:800:100]]
    cases = []
    for i, row in enumerate(rows):
        human = f"{row['context']} {row['question']} (a) {row['ans0']} (b) {row['ans1']} (c) {row['ans2']}."
        if i % 3 == 0:  # the model's chat template
            prompt = hf_engine.render(Dialogue.single(human, "The answer is"))
        elif i % 3 == 1:  # the study's plain-text format
            prompt = render_human_assistant(Dialogue.single(human, "The answer is"))
        else:  # a chain-of-thought dialogue, chat-rendered
            turns = (
                Turn("user", human),
                Turn("assistant", "Let's think about how to answer the question. The context says little."),
                Turn("user", "Based on the above, what is the single, most likely answer choice?"),
                Turn("assistant", "The single, most likely answer choice is"),
            )
            prompt = hf_engine.render(Dialogue(turns))
        # " (a)" is three tokens: " (", "a", ")"; every candidate shares the first with the others
        candidates = (" (a)", " (b)", " (c)") + ((f" (a) {row['ans0']}",) if i % 4 == 0 else ())
        cases.append(ScoreRequest(prompt, candidates))
    long_context = " ".join(row["context"] for row in rows[:12])
    cases += [
        ScoreRequest("Hi", (" there", "!", " there!")),
        ScoreRequest(f"{long_context}\nQuestion: was anyone in a hurry? Answer:", (" yes", " no", " Yes", " No")),
        # "s" merges with "answer" across the boundary
        ScoreRequest("We read the question twice before we wrote down the answer", ("s", " is", " is (a)")),
    ]
    assert len(cases) >= 50
    return cases


def reference_scores(model: Any, engine: Any, requests: list[ScoreRequest]) -> list[tuple[float, int]]:
    """(score, tokens) from one full forward pass per (prompt, candidate): logits at every position, then
    each continuation token's logit minus the log-sum-exp of its row, in float64, summed in order."""
    scores = []
    with torch.inference_mode():
        for request in requests:
            for candidate in request.continuations:
                context, continuation = engine.encode_pair(request.prompt, candidate)
                logits = model(torch.tensor([context + continuation])).logits[0].double()
                normaliser = torch.logsumexp(logits, dim=-1)
                rows = [len(context) - 1 + k for k in range(len(continuation))]
                score = sum(float(logits[r, t] - normaliser[r]) for r, t in zip(rows, continuation, strict=True))
                scores.append((score, len(context) + len(continuation)))
    return scores


def flat(results: list[ScoreResult]) -> list[float]:
    return [c.logprob for r in results for c in r.continuations]


@pytest.fixture(scope="module")
def engine_scores(hf_engine: Any, requests: list[ScoreRequest]) -> list[ScoreResult]:
    return list(hf_engine.score(requests))


def load_plain(path: str, attention: str) -> Any:
    """The same checkpoint loaded by plain transformers (no engine involved)."""
    from transformers import AutoModelForCausalLM

    import workers.hf.attention  # noqa: F401 - registers the "moralscope" attention with transformers

    model: Any = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention)
    return model.eval()


@pytest.fixture(scope="module")
def plain_model(embedded_model: Any, hf_engine: Any) -> Any:
    """The checkpoint loaded by plain transformers with the engine's arithmetic ("moralscope" attention,
    row-tiled linear layers), run one sequence at a time."""
    from workers.hf.invariant import make_batch_invariant

    model = load_plain(embedded_model.path, "moralscope")
    assert make_batch_invariant(model) == hf_engine.row_tiles
    return model


def test_scores_equal_one_sequence_forward_passes_bit_for_bit(
    hf_engine: Any, plain_model: Any, requests: list[ScoreRequest], engine_scores: list[ScoreResult]
) -> None:
    # The engine packs a context with all its candidates, batches many, cuts them under a token budget and
    # reads contexts from its prefix cache; a plain forward pass over each context + candidate alone gives
    # the same bits.
    expected = reference_scores(plain_model, hf_engine, requests)
    got = flat(engine_scores)
    assert len(got) == len(expected) > 150
    assert got == [score for score, _ in expected]
    assert min(n for _, n in expected) < 8  # down to a few tokens (where BLAS takes other kernels)
    assert all(-60 < s < 0 for s in got)


def test_scores_agree_with_stock_transformers_within_float32_noise(
    hf_engine: Any, embedded_model: Any, requests: list[ScoreRequest], engine_scores: list[ScoreResult]
) -> None:
    # Stock float32 (sdpa attention, BLAS on whole sequences) rounds differently for different shapes:
    # appending tokens to a sequence moves its summed log-probabilities by up to ~3e-5 on this model.
    subset = requests[::4]
    expected = reference_scores(load_plain(embedded_model.path, "sdpa"), hf_engine, subset)
    got = flat(engine_scores[::4])
    assert max(abs(a - b) for a, (b, _) in zip(got, expected, strict=True)) <= 5e-5


def test_token_ids_and_counts_follow_joint_tokenisation(
    hf_engine: Any, requests: list[ScoreRequest], engine_scores: list[ScoreResult]
) -> None:
    for request, result in zip(requests, engine_scores, strict=True):
        contexts = []
        for candidate, score in zip(request.continuations, result.continuations, strict=True):
            context, continuation = hf_engine.encode_pair(request.prompt, candidate)
            assert list(score.token_ids) == continuation
            contexts.append(len(context))
        assert result.prompt_tokens == max(contexts)
    hi = engine_scores[-3]
    assert hi.continuations[2].token_ids[:1] == hi.continuations[0].token_ids  # " there!" starts with " there"


def test_batched_equals_unbatched_under_any_budget(
    hf_engine: Any, embedded_model: Any, requests: list[ScoreRequest], engine_scores: list[ScoreResult]
) -> None:
    from workers.hf import HFEngine

    baseline = flat(engine_scores)
    for budget in (64, 100_000):  # one sequence per pass; everything in one pass (the default cuts a few)
        options = {"max_batch_tokens": budget, "prefix_cache": False}
        config = EngineConfig(model_path=embedded_model.path, device="cpu", options=options)
        other = HFEngine(config, hf_engine.renderer, model=hf_engine.model)
        assert flat(other.score(requests)) == baseline  # bit for bit (see tests/workers/test_hf_invariance.py)
    alone = [c.logprob for r in requests[::5] for c in hf_engine.score([r])[0].continuations]
    assert alone == flat(engine_scores[::5])
    assert hf_engine.score([]) == []


def test_encode_pair_edge_cases_on_the_real_tokenizer(hf_engine: Any) -> None:
    # a boundary merge: "answer" + "s" is one token, so the context loses its last token
    whole = hf_engine.encode("The answers")
    context, continuation = hf_engine.encode_pair("The answer", "s")
    assert context + continuation == whole
    assert context == hf_engine.encode("The answer")[:-1]
    assert len(continuation) == 1
    # no merge: the continuation's tokens are exactly the joint encoding's tail
    context, continuation = hf_engine.encode_pair("The answer is", " (a)")
    assert context == hf_engine.encode("The answer is")
    assert [hf_engine.renderer.tokenizer.decode([t]) for t in continuation] == [" (", "a", ")"]
    # a chat prompt is encoded without extra special tokens (the template has them)
    chat = hf_engine.render(Dialogue.single("Hello", "Sure"))
    ids = hf_engine.encode(chat)
    assert ids.count(hf_engine.renderer.tokenizer.convert_tokens_to_ids("<|im_start|>")) == chat.count("<|im_start|>")
    with pytest.raises(EngineError, match="adds no tokens"):
        hf_engine.encode_pair("The answer is", "")
    with pytest.raises(EngineError, match="no tokens"):
        hf_engine.encode_pair("", " (a)")


def test_requests_that_cannot_be_scored_are_error_results(hf_engine: Any) -> None:
    good = ScoreRequest("The answer is", (" (a)", " (b)"))
    results = hf_engine.score(
        [
            ScoreRequest("word " * 9000, (" (a)",)),  # longer than the model's positions
            good,
            ScoreRequest("The answer is", (" (a)", "")),  # a continuation that adds no tokens
            ScoreRequest("", (" (a)",)),  # nothing to condition on
        ]
    )
    assert [r.error is not None for r in results] == [True, False, True, True]
    assert "positions" in str(results[0].error)
    assert results[0].prompt_tokens > 9000
    assert "adds no tokens" in str(results[2].error)
    assert "no tokens" in str(results[3].error)
    assert all(r.continuations == () and r.tokens_computed == 0 for r in results if r.error)
    assert results[1].continuations == hf_engine.score([good])[0].continuations


# -- generation ------------------------------------------------------------------------------------
def chat(engine: Any, text: str) -> str:
    return str(engine.render(Dialogue.single(text, "")))


def test_same_seed_same_text_alone_or_in_a_batch(hf_engine: Any) -> None:
    story = GenerateRequest(chat(hf_engine, "Write a short story about a cat."), max_new_tokens=24, seed=7)
    others = [
        GenerateRequest(chat(hf_engine, "Name three rivers in Europe and say something about each."), 20, seed=1),
        GenerateRequest("\n\nHuman: Hi\n\nAssistant:", max_new_tokens=12, seed=2),
    ]
    (alone,) = hf_engine.generate([story])
    again, *rest = hf_engine.generate([story, *others])
    assert (again.text, again.completion_tokens, again.finish_reason) == (
        alone.text,
        alone.completion_tokens,
        alone.finish_reason,
    )
    budget = hf_engine.forward.max_batch_tokens
    try:  # each prompt prefilled on its own, the caches joined for decoding
        hf_engine.forward.max_batch_tokens = 1
        assert [r.text for r in hf_engine.generate([story, *others])] == [r.text for r in (again, *rest)]
    finally:
        hf_engine.forward.max_batch_tokens = budget
    assert alone.completion_tokens <= 24
    assert alone.prompt_tokens == len(hf_engine.encode(story.prompt))
    assert [r.prompt_tokens for r in rest] == [len(hf_engine.encode(o.prompt)) for o in others]


def test_different_seeds_give_different_texts(hf_engine: Any) -> None:
    prompt = chat(hf_engine, "Write a short story about a cat.")
    texts = {r.text for r in hf_engine.generate([GenerateRequest(prompt, 24, seed=s) for s in (1, 2, 3)])}
    assert len(texts) == 3


def test_greedy_matches_a_plain_argmax_loop_with_left_padding(hf_engine: Any, plain_model: Any) -> None:
    prompts = [
        chat(hf_engine, "What is the capital of France? Explain briefly."),
        "\n\nHuman: Count from one to ten.\n\nAssistant:",
        chat(hf_engine, "Hi"),
    ]
    results = hf_engine.generate([GenerateRequest(p, max_new_tokens=8, temperature=0) for p in prompts])
    for prompt, result in zip(prompts, results, strict=True):
        ids = hf_engine.encode(prompt)
        with torch.inference_mode():
            for _ in range(result.completion_tokens):
                ids.append(int(plain_model(torch.tensor([ids])).logits[0, -1].argmax()))
        expected = hf_engine.renderer.tokenizer.decode(ids[len(hf_engine.encode(prompt)) :])
        if result.finish_reason == "length":
            assert result.text == expected
        else:  # the last token was the end of sequence, which the text leaves out
            assert expected == result.text + hf_engine.renderer.tokenizer.eos_token
    nucleus = hf_engine.generate([GenerateRequest(p, max_new_tokens=8, top_p=1e-6, seed=3) for p in prompts])
    assert [r.text for r in nucleus] == [r.text for r in results]  # top_p → 0 keeps only the top token


def test_stop_strings_cut_the_text_before_the_first_match(hf_engine: Any) -> None:
    prompt = chat(hf_engine, "Write a short story about a cat.")
    (full,) = hf_engine.generate([GenerateRequest(prompt, max_new_tokens=30, temperature=0)])
    stop = full.text[12:16]
    first = full.text.find(stop)
    (cut,) = hf_engine.generate([GenerateRequest(prompt, max_new_tokens=30, temperature=0, stop=("@@", stop))])
    assert cut.text == full.text[:first]
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens


def test_max_new_tokens_and_end_of_sequence(hf_engine: Any) -> None:
    prompt = chat(hf_engine, "Write a long essay about the history of Rome.")
    results = hf_engine.generate([GenerateRequest(prompt, max_new_tokens=5, seed=s) for s in range(3)])
    assert all(r.completion_tokens == 5 and r.finish_reason == "length" for r in results)
    (answer,) = hf_engine.generate([GenerateRequest(chat(hf_engine, "Is the sky blue? Answer yes or no."), 40, 0)])
    assert answer.finish_reason == "stop"  # the model ended its turn
    assert answer.completion_tokens < 40
    assert "<|im_end|>" not in answer.text


def test_invalid_generation_requests_are_refused(hf_engine: Any) -> None:
    with pytest.raises(ValueError, match="temperature"):
        hf_engine.generate([GenerateRequest("Hi", temperature=-1)])
    too_long, fine = hf_engine.generate(
        [GenerateRequest("word " * 9000, max_new_tokens=4), GenerateRequest("\n\nHuman: Hi\n\nAssistant:", 3, seed=1)]
    )
    assert too_long.finish_reason == "error"
    assert "positions" in str(too_long.error)
    assert too_long.text == ""
    assert fine.error is None
    assert 1 <= fine.completion_tokens <= 3


def test_probabilities_are_consistent(engine_scores: list[ScoreResult]) -> None:
    # " (a)" / " (b)" / " (c)" are disjoint events: their total mass cannot exceed one
    for result in engine_scores[:48]:
        assert sum(math.exp(c.logprob) for c in result.continuations[:3]) <= 1 + 1e-9


def test_sampler_follows_temperature_and_nucleus_row_by_row() -> None:
    from workers.hf.generation import sample as _sample

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 3))
    requests = [
        GenerateRequest("", temperature=1.0),
        GenerateRequest("", temperature=1.0, top_p=0.7),  # keeps the two tokens whose mass reaches 0.7
        GenerateRequest("", temperature=0),
    ]
    generators = [torch.Generator().manual_seed(s) for s in range(3)]
    counts = torch.zeros((3, 4))
    for _ in range(4000):
        for row, token in enumerate(_sample(requests, logits, generators)):
            counts[row, token] += 1
    frequencies = counts / 4000
    assert torch.allclose(frequencies[0], torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.03)
    assert torch.allclose(frequencies[1], torch.tensor([0.625, 0.375, 0, 0]), atol=0.03)
    assert frequencies[2].tolist() == [1, 0, 0, 0]
    # each row draws from its own generator only: a row's tokens do not depend on its neighbours
    (alone,) = _sample(requests[:1], logits[:1], [torch.Generator().manual_seed(0)])
    assert alone == _sample(requests, logits, [torch.Generator().manual_seed(s) for s in range(3)])[0]
