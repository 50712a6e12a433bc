"""A small deterministic engine for unit tests of the pool and actor (no model, no torch).

Tokens are characters (``ord``), so the base class's joint-tokenisation rule applies unchanged. A
continuation's log-probability is a fixed function of its tokens and the context length, so a test
can compute the expected result in-process and compare it with what came back through Ray.

Behaviour switches, all via ``EngineConfig.options``:
- ``delay_s``: sleep this long per batch (gives a test time to kill an actor mid-run);
- ``log_dir``: append one line per served batch to ``<log_dir>/<pid>.log`` (what the actors really ran);
- ``fail_init``: raise while loading (a model that cannot be loaded);
- a prompt containing ``FAIL`` makes :meth:`FakeEngine.score` / :meth:`FakeEngine.generate` raise;
- ``real_engine``: :func:`fake_engine_factory` builds the model's real engine instead (a live server on this
  factory can still run one job on the real model, e.g. the console's sweep figure in a browser).

The module registers itself with Ray's cloudpickle *by value*, so actors on any node can build the
engine without ``tests/`` being importable there.
"""

from __future__ import annotations

import os
import sys
import time
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

FAIL_MARKER = "FAIL"


class CharTokenizer:
    """One token per character; no chat template (so prompts render as human_assistant)."""

    chat_template = None
    eos_token = None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [ord(ch) for ch in text]}


def fake_logprob(context_len: int, token_ids: Sequence[int]) -> float:
    """The fake engine's log-probability of a continuation: a fixed, easily recomputed function."""
    return -sum(((token * 31 + context_len) % 97 + 1) / 100 for token in token_ids)


class FakeEngine(Engine):
    """Deterministic :class:`~workers.engine.Engine` for tests; records the process it runs in."""

    def __init__(self, config: EngineConfig) -> None:
        super().__init__(config, PromptRenderer(CharTokenizer(), "human_assistant"))
        if config.options.get("fail_init"):
            raise EngineError(f"fake engine cannot load {config.model_path!r} (fail_init is set)")
        self.delay_s = float(config.options.get("delay_s", 0.0))
        self.log_dir = config.options.get("log_dir")
        self.pid = os.getpid()
        self.closed = False

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        self._pause_and_check([r.prompt for r in requests])
        results = []
        for request in requests:
            scores = []
            context: list[int] = []
            for continuation in request.continuations:
                context, ids = self.encode_pair(request.prompt, continuation)
                scores.append(ContinuationScore(fake_logprob(len(context), ids), tuple(ids)))
            results.append(ScoreResult(tuple(scores), prompt_tokens=len(self.encode(request.prompt))))
        return results

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        self._pause_and_check([r.prompt for r in requests])
        return [
            GenerateResult(
                text=f"seed={r.seed} tail={r.prompt[-6:]!r}"[: r.max_new_tokens],
                prompt_tokens=len(r.prompt),
                completion_tokens=min(r.max_new_tokens, 16),
                finish_reason="stop",
            )
            for r in requests
        ]

    def close(self) -> None:
        self.closed = True

    def _pause_and_check(self, prompts: list[str]) -> None:
        if self.log_dir:
            with open(os.path.join(self.log_dir, f"{self.pid}.log"), "a", encoding="utf-8") as log:
                log.write(f"{len(prompts)}\n")
        if self.delay_s:
            time.sleep(self.delay_s)
        for prompt in prompts:
            if FAIL_MARKER in prompt:
                raise EngineError(f"fake engine refuses prompt {prompt!r} (it contains {FAIL_MARKER})")


def fake_engine_factory(config: EngineConfig) -> Engine:
    """The engine factory the pool tests pass to :class:`~workers.pool.EnginePool` (the real engine for a model
    whose options set ``real_engine``)."""
    if config.options.get("real_engine"):
        return load_engine(config)
    return FakeEngine(config)


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
