"""What crosses the engine boundary: per-request data and per-engine settings.

Requests and results are plain frozen dataclasses (cheap to build by the hundred thousand and to
pickle across Ray); the engine configuration is a pydantic model because users write it. It lives in
:mod:`schemas.engine_config` and is imported from here on first use, so that the engines' own path
(``workers.engine``, ``workers.hf``) runs without pydantic (``bench/gpu_check.sh`` needs that).

Per-request settings (:class:`ScoreRequest`, :class:`GenerateRequest`) are kept apart from
per-engine settings (:class:`EngineConfig`), like vLLM's ``SamplingParams`` vs ``LLM(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from schemas.engine_config import EngineConfig

EngineName = Literal["hf", "vllm"]
DType = Literal["float32", "bfloat16", "float16"]
PromptFormat = Literal["auto", "chat", "human_assistant"]
ResolvedPromptFormat = Literal["chat", "human_assistant"]


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """Score each continuation of one prompt.

    The prompt is taken literally (already rendered). Each continuation's tokens are those of
    ``prompt + continuation`` past the prompt's tokens (joint tokenisation).
    """

    prompt: str
    continuations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContinuationScore:
    """The summed log-probability of one continuation given its prompt."""

    logprob: float
    """Sum over the continuation's tokens of log p(token | everything before it), in nats."""
    token_ids: tuple[int, ...]
    """The continuation's token ids under joint tokenisation (two surface forms that tokenise to the
    same ids are the same event and must not be counted twice)."""


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Scores of one :class:`ScoreRequest`, continuations in request order.

    A request the engine cannot serve (longer than the model's context, a continuation that adds no
    tokens, ...) is not an exception: its result has ``error`` set and no continuations (STYLE 10,
    "a per-row failure is data"). Use :meth:`failed` to build one.
    """

    continuations: tuple[ContinuationScore, ...]
    prompt_tokens: int
    """Tokens in the prompt (the context the continuations were scored against)."""
    computed_tokens: int | None = None
    """Tokens the engine actually ran through the model for this request: prompt and continuation tokens
    not served from a prefix cache (a prefix shared within a batch counts for the first request that
    needed it). None: the engine does not say, so every token counts as computed (:attr:`tokens_computed`).
    An operational measurement: it depends on what was cached, so it may differ between two runs whose
    scores are identical."""
    error: str | None = None
    """Why the request could not be scored; None when it was."""

    @property
    def continuation_tokens(self) -> int:
        """Tokens scored over all continuations."""
        return sum(len(c.token_ids) for c in self.continuations)

    @property
    def tokens_requested(self) -> int:
        """Prompt plus continuation tokens: what an engine without any cache would compute."""
        return self.prompt_tokens + self.continuation_tokens

    @property
    def tokens_computed(self) -> int:
        """:attr:`computed_tokens`, or every requested token when the engine does not report it."""
        return self.tokens_requested if self.computed_tokens is None else self.computed_tokens

    @classmethod
    def failed(cls, error: str, *, prompt_tokens: int = 0) -> ScoreResult:
        """The result of a request that cannot be served."""
        return cls((), prompt_tokens, 0, error)


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """Sample one continuation of a prompt (used for chain-of-thought reasoning, SPEC §6)."""

    prompt: str
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    """Generation ends before the first of these strings (which is not included in the text)."""
    seed: int = 0
    """Per-request seed: the same request and seed give the same text on the same engine."""


@dataclass(frozen=True, slots=True)
class GenerateResult:
    """The sampled text of one :class:`GenerateRequest`."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length", "error"]
    computed_tokens: int | None = None
    """Prompt and sampled tokens the engine ran through the model (prompt tokens served from a prefix cache
    are not computed). None: every token counts as computed (:attr:`tokens_computed`)."""
    error: str | None = None
    """Why the request could not be served (``finish_reason`` is then ``error`` and ``text`` empty)."""

    @property
    def tokens_requested(self) -> int:
        """Prompt plus sampled tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def tokens_computed(self) -> int:
        """:attr:`computed_tokens`, or every requested token when the engine does not report it."""
        return self.tokens_requested if self.computed_tokens is None else self.computed_tokens

    @classmethod
    def failed(cls, error: str, *, prompt_tokens: int = 0) -> GenerateResult:
        """The result of a request that cannot be served."""
        return cls("", prompt_tokens, 0, "error", 0, error)


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model located on local disk, ready for an engine to load."""

    name: str
    """What the user asked for (a built-in name, a Hugging Face id, or a path)."""
    path: str
    """A local folder with config, weights, tokenizer (and chat template, if any)."""
    revision: str | None = None
    """The Hugging Face revision (commit) when the model came from the Hub."""
    fingerprint: str = ""
    """A sha256 over the weight files' names, sizes and content hashes, for provenance."""
    extra: dict[str, Any] = field(default_factory=dict)


def __getattr__(name: str) -> Any:
    """``EngineConfig`` on first use (PEP 562): this module itself never imports pydantic."""
    if name == "EngineConfig":
        from schemas.engine_config import EngineConfig

        return EngineConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ContinuationScore",
    "DType",
    "EngineConfig",
    "EngineName",
    "GenerateRequest",
    "GenerateResult",
    "PromptFormat",
    "ResolvedModel",
    "ResolvedPromptFormat",
    "ScoreRequest",
    "ScoreResult",
]
