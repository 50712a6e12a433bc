"""The ``hf`` engine: torch + transformers on CPU or CUDA, with a prefix cache and batch-invariant float32.

- **Scoring** (:mod:`workers.hf.scoring`): a context and all its candidates in one packed sequence,
  the vocabulary projection only where a log-probability is needed.
- **Generation** (:mod:`workers.hf.generation`): prefill through the cache, batched decoding, seeded.
- **Prefix cache** (:mod:`workers.hf.prefix_cache`, :mod:`workers.hf.forward`): a radix tree of keys and
  values kept across calls within ``prefix_cache_mb``; within a call, prefixes several requests share are
  computed once; a finished reasoning sample stays cached for its answer prompt.
- **Batch invariance** (:mod:`workers.hf.invariant`, :mod:`workers.hf.attention`): on CPU a token's scores
  are the same bits whatever it was batched or cached with, so a job resumed on a cold cache equals an
  undisturbed one. GPUs (and bfloat16) make no bitwise claim.

Engine options (``EngineConfig.options``):

- ``max_batch_tokens``: new tokens per forward pass (default 1024 on CPU, 32768 on CUDA);
- ``max_batch_sequences``: sequences decoded together (32 on CPU, 128 on CUDA);
- ``prefix_cache``: keep keys and values across calls (default true);
- ``prefix_cache_mb``: the cache's budget (default on CPU: 2048 MiB or an eighth of the memory, the
  smaller; on CUDA: a quarter of the memory left free after loading the model);
- ``batch_invariant``: fixed-shape arithmetic (default true on CPU, false on CUDA).

Sliding-window attention is not applied (prompts here are far shorter than any window); sequences longer
than the model's ``max_position_embeddings`` are refused (an error result).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoModelForCausalLM

from schemas.inference import GenerateRequest, GenerateResult, ScoreRequest, ScoreResult
from workers.engine import Engine, EngineError
from workers.hf import generation, scoring
from workers.hf.attention import ATTENTION, DenseAttention
from workers.hf.exact import ExactAttention, verified_query_tiles
from workers.hf.forward import Forward
from workers.hf.invariant import make_batch_invariant
from workers.hf.prefix_cache import PrefixCache
from workers.rendering import PromptRenderer

if TYPE_CHECKING:
    from schemas.inference import EngineConfig

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_MAX_BATCH_TOKENS = {"cpu": 1024, "cuda": 32768}
DEFAULT_MAX_BATCH_SEQUENCES = {"cpu": 32, "cuda": 128}
OPTIONS = ("max_batch_tokens", "max_batch_sequences", "prefix_cache", "prefix_cache_mb", "batch_invariant")


def default_cache_mb(device: torch.device) -> int:
    """The prefix cache's default budget on this device (see the module docstring)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free / 4 / 2**20)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(min(2048, memory / 8 / 2**20))


def _option(options: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    """An engine option, checked: ``kind`` bool, or int (>= 0 for a budget, >= 1 otherwise)."""
    if name not in options:
        return default
    value = options[name]
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"option {name} must be true or false, got {value!r}")
    least = 0 if name == "prefix_cache_mb" else 1
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < least):
        raise ValueError(f"option {name} must be a whole number >= {least}, got {value!r}")
    return value


class HFEngine(Engine):
    """Scores and samples with a transformers causal LM (see the module docstring)."""

    def __init__(self, config: EngineConfig, renderer: PromptRenderer, *, model: Any = None) -> None:
        """Load ``config.model_path``, or adopt an already built ``model`` (benchmarks with random weights)."""
        super().__init__(config, renderer)
        options = dict(config.options)
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown hf engine option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _DTYPES[config.dtype]
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        max_batch_tokens = _option(options, "max_batch_tokens", int, DEFAULT_MAX_BATCH_TOKENS[kind])
        self.max_batch_sequences = _option(options, "max_batch_sequences", int, DEFAULT_MAX_BATCH_SEQUENCES[kind])
        use_cache = _option(options, "prefix_cache", bool, True)
        invariant = _option(options, "batch_invariant", bool, kind == "cpu")
        if model is None:
            try:
                model = AutoModelForCausalLM.from_pretrained(config.model_path, dtype=self.dtype)
            except (OSError, ValueError) as exc:
                raise EngineError(f"cannot load the model in {config.model_path}: {exc}") from exc
        model.set_attn_implementation(ATTENTION)
        self.model: Any = model.to(device=self.device, dtype=self.dtype).eval()
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 1 << 30))
        self.row_tiles: tuple[int, ...] = ()
        self.query_tiles: tuple[int, ...] = ()
        if invariant:
            self.row_tiles = make_batch_invariant(self.model)
            cfg = self.model.config
            head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            groups = cfg.num_attention_heads // cfg.num_key_value_heads
            self.query_tiles = verified_query_tiles(groups, cfg.num_key_value_heads, head_dim, self.device)
            if not (self.row_tiles and self.query_tiles):
                log.warning("this machine's matrix products are not batch-invariant for any tile size; scores will "
                            "depend on batching within rounding")  # fmt: skip
        self.batch_invariant = bool(self.row_tiles and self.query_tiles)
        backend = ExactAttention(self.query_tiles) if self.batch_invariant else DenseAttention()
        budget_mb = _option(options, "prefix_cache_mb", int, None)
        if budget_mb is None:
            budget_mb = default_cache_mb(self.device)
        cache = PrefixCache(budget_mb * 2**20) if use_cache else None
        self.forward = Forward(self.model, backend, self.device, max_batch_tokens, cache)
        tokenizer = renderer.tokenizer
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_ids = frozenset(int(i) for i in eos_ids)
        self._requested = self._computed = self._requests = 0

    @property
    def max_batch_tokens(self) -> int:
        """New tokens per forward pass (``options["max_batch_tokens"]``)."""
        return self.forward.max_batch_tokens

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Each continuation's summed log-probability (nats) and token ids, requests in order."""
        results = scoring.score(self, requests)
        self._count(results)
        return results

    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """Sampled text per request (seeded per request), requests in order."""
        results = generation.generate(self, requests)
        self._count(results)
        return results

    def _count(self, results: Sequence[ScoreResult | GenerateResult]) -> None:
        self._requests += len(results)
        self._requested += sum(r.tokens_requested for r in results)
        self._computed += sum(r.tokens_computed for r in results)

    @property
    def stats(self) -> dict[str, int]:
        """Cumulative counters, reported by the actor's ``info()``: requests, tokens requested and computed,
        tokens served from the prefix cache, and the cache's bytes, peak, budget, nodes and evictions."""
        cache = self.forward.cache
        return {
            "requests": self._requests,
            "tokens_requested": self._requested,
            "tokens_computed": self._computed,
            "cache_hit_tokens": self.forward.hit_tokens,
            "cache_bytes": cache.bytes if cache else 0,
            "cache_peak_bytes": cache.peak_bytes if cache else 0,
            "cache_budget_bytes": cache.budget_bytes if cache else 0,
            "cache_nodes": cache.nodes if cache else 0,
            "cache_evictions": cache.evictions if cache else 0,
            "batch_invariant": int(self.batch_invariant),
        }

    def close(self) -> None:
        """Drop the model and the cache and return cached accelerator memory."""
        self.model = None
        if self.forward.cache is not None:
            self.forward.cache.clear()
        self.forward.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
