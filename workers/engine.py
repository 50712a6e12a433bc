"""The engine interface: what every inference backend offers, and the tokenisation rule.

An engine is loaded for one model and offers three batch methods, results in input order:

- :meth:`Engine.score`: for each prompt, the summed log-probability of each candidate continuation;
- :meth:`Engine.generate`: sampled text (CoT reasoning), seeded per request;
- :meth:`Engine.close`: release the model.

plus :meth:`Engine.render`, the dialogue → prompt text step (delegated to a
:class:`~workers.rendering.PromptRenderer`, which needs only the tokenizer).

**Tokenisation rule (joint tokenisation), stated and implemented once here** (:meth:`Engine.encode_pair`):
the context is ``encode(prompt)``; a continuation's tokens are those of ``encode(prompt + continuation)``
past the first ``len(context)`` tokens. When the joint encoding does not start with the context's
tokens (a merge across the boundary), the context is the longest common prefix of the two encodings and
the continuation is the rest of the joint encoding. Prompts are encoded without adding special tokens
when the prompt format is ``chat`` (the template already contains them) and with them (BOS) for
``human_assistant``.

Engines own their batching and caching: a prompt is computed once for all its continuations, shared
prefixes are reused across prompts and calls, and the vocabulary projection is applied only where a
log-probability is needed. A request an engine cannot serve is data, not an exception: it raises
:class:`RequestError` inside the engine and comes back as an error result (``ScoreResult.failed``);
:class:`EngineError` is for an engine that cannot run at all. Results report ``computed_tokens``, the
tokens actually run through the model (a cached prefix is not), and engines keep cumulative counters in
``stats`` (forwarded by the actor's ``info()``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from schemas.dialogue import Dialogue
from schemas.inference import GenerateRequest, GenerateResult, ScoreRequest, ScoreResult

if TYPE_CHECKING:
    from schemas.inference import EngineConfig
    from workers.rendering import PromptRenderer


class EngineError(RuntimeError):
    """An engine failed: it cannot load or run. Raised; the pool fails the call with it."""


class RequestError(EngineError):
    """One request this engine cannot serve (a continuation that adds no tokens, an empty prompt, more
    tokens than the model takes). Engines turn it into that request's error result
    (``ScoreResult.failed`` / ``GenerateResult.failed``) and serve the rest of the batch."""


class Engine(ABC):
    """Base class of the inference engines (``hf``, ``vllm``)."""

    def __init__(self, config: EngineConfig, renderer: PromptRenderer) -> None:
        self.config = config
        self.renderer = renderer

    # -- rendering ---------------------------------------------------------------------------------
    def render(self, dialogue: Dialogue) -> str:
        """The prompt text of a dialogue in this model's format (final assistant turn left open)."""
        return self.renderer.render(dialogue)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Where a sampled assistant turn ends in this model's format."""
        return self.renderer.stop_strings

    # -- tokenisation ------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt text, with special tokens added only where the format needs them."""
        return self.renderer.encode(text)

    def encode_pair(self, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) under joint tokenisation (see the module docstring)."""
        context = self.encode(prompt)
        whole = self.encode(prompt + continuation)
        if whole[: len(context)] != context:
            common = 0
            for a, b in zip(context, whole, strict=False):
                if a != b:
                    break
                common += 1
            context = context[:common]
        continuation_ids = whole[len(context) :]
        if not continuation_ids:
            raise RequestError(f"continuation {continuation!r} adds no tokens after the prompt")
        if not context:
            raise RequestError("the prompt encodes to no tokens; nothing to condition the continuation on")
        return context, continuation_ids

    # -- batch methods -----------------------------------------------------------------------------
    @abstractmethod
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """For each request, each continuation's summed log-probability (nats) and token ids."""

    @abstractmethod
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """For each request, sampled text that stops before any stop string (seeded per request)."""

    def close(self) -> None:  # noqa: B027 - engines without resources need not override it
        """Release the model and its memory."""


def load_engine(config: EngineConfig) -> Engine:
    """Load the engine a config names (imports torch or vLLM only here)."""
    from workers.rendering import PromptRenderer

    renderer = PromptRenderer.from_pretrained(config.model_path, config.prompt_format)
    if config.engine == "hf":
        from workers.hf import HFEngine

        return HFEngine(config, renderer)
    if config.engine == "vllm":
        from workers.vllm_engine import VLLMEngine

        return VLLMEngine(config, renderer)
    raise ValueError(f"engine must be 'hf' or 'vllm', got {config.engine!r}")
