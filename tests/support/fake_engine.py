"""A deterministic fake engine (no model, no torch) for tests, live servers and ``bench/scheduler.py``.

Tokens are characters (``ord``), so the base class's joint-tokenisation rule applies unchanged. A
continuation's log-probability is a fixed function of its tokens and the context length, and generated
text a fixed function of the seed and the prompt, so results do not depend on batching, actors or
restarts, and a test can recompute them in-process.

Use it in a pool (``engine_factory=fake_engine_factory``) or in a live server
(``MORALSCOPE_ENGINE_FACTORY=tests.support.fake_engine:fake_engine_factory``, switches in the spec's
``engine_options``). Switches, all in ``EngineConfig.options``:

- ``delay_s``: sleep this long per batch; ``delay_per_request_s``: and this long per request;
- ``cost_s`` and ``tail_alpha``: a simulated, heavy-tailed latency: each request costs
  ``cost_s × X`` seconds with X Pareto(``tail_alpha``)-distributed (mean 1), drawn from a hash of the
  prompt (the same request always costs the same, however it is batched); ``generate_cost`` multiplies
  it for generation;
- ``load_s``: sleep this long while loading; ``fail_init``: raise while loading;
- ``log_dir``: append one line per served batch to ``<log_dir>/<pid>.log``:
  ``start end kind requests first-prompt-sha`` (what each actor really ran, and when);
- ``raise_on``: substrings; a batch holding a prompt that contains one raises :class:`EngineError`;
- ``error_on``: substrings; such a request gets an error result (as engines report unservable requests);
- ``hang_on``: substrings; a batch holding such a prompt sleeps for an hour (a hung engine);
- ``die_on``: substrings; the engine process exits at once (a crashing engine);
- ``cache`` (default true): report ``computed_tokens`` as a prefix cache would (tokens past the longest
  prefix shared with the last 256 prompts this engine saw);
- ``real_engine``: :func:`fake_engine_factory` builds the model's real engine instead (a live server on this
  factory can still run one job on the real model, e.g. the console's sweep figure in a browser).

The module registers itself with Ray's cloudpickle *by value*, so actors on any node can build the
engine without ``tests/`` being importable there.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import deque
from collections.abc import Sequence

import ray.cloudpickle

from schemas.inference import (
    ContinuationScore,
    EngineConfig,
    GenerateRequest,
    GenerateResult,
    ScoreRequest,
    ScoreResult,
)
from workers.engine import Engine, EngineError, load_engine
from workers.rendering import PromptRenderer


class CharTokenizer:
    """One token per character; no chat template (so prompts render as human_assistant)."""

    chat_template = None
    eos_token = None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [ord(ch) for ch in text]}


def fake_logprob(context_len: int, token_ids: Sequence[int]) -> float:
    """The fake engine's log-probability of a continuation: a fixed, easily recomputed function."""
    return -sum(((token * 31 + context_len) % 97 + 1) / 100 for token in token_ids)


def fake_text(request: GenerateRequest) -> str:
    """The fake engine's "reasoning" for a request: a fixed function of its seed and prompt."""
    return f"seed={request.seed} tail={request.prompt[-6:]!r}"[: request.max_new_tokens]


def request_cost(prompt: str, cost_s: float, tail_alpha: float) -> float:
    """Seconds a request costs under the simulated latency: ``cost_s × X``, X ~ Pareto(alpha) scaled to mean 1."""
    if cost_s <= 0:
        return 0.0
    u = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big") / 2**64
    pareto = (1.0 - u) ** (-1.0 / tail_alpha)  # ≥ 1, mean alpha / (alpha - 1)
    return cost_s * pareto * (tail_alpha - 1.0) / tail_alpha


def _shared_prefix(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _matches(prompt: str, needles: Sequence[str]) -> bool:
    return any(needle in prompt for needle in needles)


class FakeEngine(Engine):
    """Deterministic :class:`~workers.engine.Engine` for tests; see the module docstring for its switches."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config, PromptRenderer(CharTokenizer(), "human_assistant"))
        options = config.options
        time.sleep(float(options.get("load_s", 0.0)))
        if options.get("fail_init"):
            raise EngineError(f"fake engine cannot load {config.model_path!r} (fail_init is set)")
        self.delay_s = float(options.get("delay_s", 0.0))
        self.delay_per_request_s = float(options.get("delay_per_request_s", 0.0))
        self.cost_s = float(options.get("cost_s", 0.0))
        self.tail_alpha = float(options.get("tail_alpha", 2.0))
        self.generate_cost = float(options.get("generate_cost", 1.0))
        self.log_dir = options.get("log_dir")
        self.raise_on = tuple(options.get("raise_on", ()))
        self.error_on = tuple(options.get("error_on", ()))
        self.hang_on = tuple(options.get("hang_on", ()))
        self.die_on = tuple(options.get("die_on", ()))
        self.cache = bool(options.get("cache", True))
        self._seen: deque[str] = deque(maxlen=256)
        self.pid = os.getpid()
        self.closed = False

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        started = self._serve_batch([r.prompt for r in requests], 1.0)
        results = []
        for request in requests:
            if _matches(request.prompt, self.error_on):
                results.append(ScoreResult.failed("fake engine cannot serve this request (error_on)"))
                continue
            scores = []
            context: list[int] = []
            for continuation in request.continuations:
                context, ids = self.encode_pair(request.prompt, continuation)
                scores.append(ContinuationScore(fake_logprob(len(context), ids), tuple(ids)))
            prompt_tokens = len(self.encode(request.prompt))
            computed = self._computed(request.prompt) + sum(len(s.token_ids) for s in scores)
            results.append(ScoreResult(tuple(scores), prompt_tokens=prompt_tokens, computed_tokens=computed))
        self._log("score", requests[0].prompt if requests else "", len(requests), started)
        return results

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        started = self._serve_batch([r.prompt for r in requests], self.generate_cost)
        results = []
        for r in requests:
            if _matches(r.prompt, self.error_on):
                results.append(GenerateResult.failed("fake engine cannot serve this request (error_on)"))
                continue
            completion = min(r.max_new_tokens, 16)
            computed = self._computed(r.prompt) + completion
            results.append(GenerateResult(fake_text(r), len(r.prompt), completion, "stop", computed_tokens=computed))
        self._log("generate", requests[0].prompt if requests else "", len(requests), started)
        return results

    def close(self) -> None:
        self.closed = True

    def _serve_batch(self, prompts: list[str], cost_factor: float) -> float:
        started = time.time()
        for prompt in prompts:
            if _matches(prompt, self.die_on):
                os._exit(17)
            if _matches(prompt, self.raise_on):
                raise EngineError(f"fake engine refuses prompt {prompt[-60:]!r} (raise_on)")
        if any(_matches(prompt, self.hang_on) for prompt in prompts):
            time.sleep(3600)
        cost = sum(request_cost(p, self.cost_s, self.tail_alpha) for p in prompts) * cost_factor
        time.sleep(self.delay_s + self.delay_per_request_s * len(prompts) + cost)
        return started

    def _computed(self, prompt: str) -> int:
        """Prompt tokens past the longest prefix shared with a recently seen prompt (all of them without cache)."""
        if not self.cache:
            return len(prompt)
        shared = max((_shared_prefix(prompt, seen) for seen in self._seen), default=0)
        self._seen.append(prompt)
        return len(prompt) - shared

    def _log(self, kind: str, first_prompt: str, size: int, started: float) -> None:
        if not self.log_dir:
            return
        digest = hashlib.sha256(first_prompt.encode()).hexdigest()[:12]
        with open(os.path.join(self.log_dir, f"{self.pid}.log"), "a", encoding="utf-8") as log:
            log.write(f"{started:.6f} {time.time():.6f} {kind} {size} {digest}\n")


def fake_engine_factory(config: EngineConfig) -> Engine:
    """The engine factory of pools and live servers in tests (see the module docstring); the real engine for a
    model whose options set ``real_engine``."""
    if config.options.get("real_engine"):  # the real engine checks its options: it is not given this one
        options = {k: v for k, v in config.options.items() if k != "real_engine"}
        return load_engine(config.model_copy(update={"options": options}))
    return FakeEngine(config)


SETTING = "tests.support.fake_engine:fake_engine_factory"
"""The value of ``MORALSCOPE_ENGINE_FACTORY`` that runs a live server on this engine."""
engine_factory = fake_engine_factory
"""The same factory under the name the store's tests use."""


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
