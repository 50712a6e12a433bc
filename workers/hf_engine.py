"""The ``hf`` engine: torch + transformers, on CPU or CUDA (float32 by default: exact and batch-invariant).

**Scoring** computes each prompt once for all its continuations. A prompt's context tokens and all its
continuations form one packed sequence ``[context | cont₁ | cont₂ | …]``: a continuation attends to the
context and to itself, never to a sibling, and its position ids continue from the context's end. The
sequences of a batch are laid end to end without padding, so the linear layers (nearly all the FLOPs)
see only real tokens; attention alone regroups them per sequence (:func:`moralscope_attention`). Only
the rows whose next-token log-probability is needed (the context's last position and every
continuation position but the last) go through the vocabulary projection, and ``log_softmax`` runs in
float64 (a float32 log-sum-exp over a 49k vocabulary is off by ~1e-4). Sequences are sorted by length
and cut into batches under a token budget (``options["max_batch_tokens"]``, counted as batch size ×
longest sequence, which bounds the attention scores' memory).

**Attention is computed in float64 (float32 for half-precision models) and rounded once.** Every other
operation of a transformer is row-wise, so a token's result depends on the rest of its batch only
through attention, whose float32 reductions round differently for different key lengths (stock
``sdpa`` on the embedded model moves summed log-probabilities by up to ~3e-5 when tokens are merely
appended). With this attention a sequence's float32 scores are bit-identical however it is packed or
batched, and identical to a plain one-sequence forward pass of the same model with
``attn_implementation="moralscope"`` (registered with transformers' ``AttentionInterface``). It costs
~10-15% of a forward pass on CPU for 130-token prompts.

**Generation** prefills the prompts in length-sorted groups under the token budget, joins their KV
caches left-padded to one width, and decodes batches of ``options["max_batch_sequences"]`` rows (32
on CPU: a decoding step reads every weight once, so wider steps cost little more) one token per step,
with one ``torch.Generator`` per request, so the same request and seed give the same text whatever it
is batched with. ``temperature == 0`` is greedy; ``top_p < 1`` keeps the smallest set of most likely
tokens whose mass reaches ``top_p``. Text ends before the first stop string or at an end-of-sequence
token; ``completion_tokens`` counts every sampled token, including one that completed a stop string or
was the end-of-sequence.

Sliding-window attention is not applied (prompts here are far shorter than any window); sequences
longer than the model's ``max_position_embeddings`` are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import AttentionInterface, AutoModelForCausalLM, DynamicCache
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from schemas.inference import (
    ContinuationScore,
    EngineConfig,
    GenerateRequest,
    GenerateResult,
    ScoreRequest,
    ScoreResult,
)
from workers.engine import Engine, EngineError
from workers.rendering import PromptRenderer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_MAX_BATCH_TOKENS = {"cpu": 1024, "cuda": 32768}
DEFAULT_MAX_BATCH_SEQUENCES = {"cpu": 32, "cuda": 128}
ATTENTION = "moralscope"
_MIN_PROJECTED_ROWS = 16
_PROJECTION_CHUNK = 512


def moralscope_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    packed_index: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Grouped-query attention in float64 (float32 for half precision), rounded once to the input dtype.

    ``query`` is (batch, heads, q_len, dim) and ``key``/``value`` (batch, kv_heads, kv_len, dim);
    ``attention_mask`` is a boolean (True = attend) or additive 4-D mask, or None for causal. Returns
    (batch, q_len, heads, dim) like transformers' attention functions.

    ``packed_index`` (sequences, width) marks a flat batch: the inputs hold one row of tokens laid end
    to end, and ``packed_index[s, t]`` is the flat position of token ``t`` of sequence ``s`` (-1 for
    padding). Attention is then computed per sequence, with ``attention_mask`` of shape
    (sequences, 1, width, width), and the output returned in the flat layout.
    """
    if packed_index is not None:
        valid = packed_index >= 0
        gather = packed_index.clamp(min=0)
        # (1, heads, n, dim) → (sequences, heads, width, dim)
        query, key, value = (x[0][:, gather].transpose(0, 1) for x in (query, key, value))
    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    wide = torch.float64 if query.dtype == torch.float32 else torch.float32
    grouped = query.to(wide).reshape(batch, kv_heads, groups * q_len, dim)
    scores = torch.matmul(grouped, key.to(wide).transpose(-1, -2)).view(batch, kv_heads, groups, q_len, kv_len)
    scores *= scaling if scaling is not None else dim**-0.5
    lowest = torch.finfo(wide).min  # not -inf: a row with no allowed key (padding) gets uniform weights, not NaN
    if attention_mask is None:
        scores.masked_fill_(
            ~torch.ones((q_len, kv_len), dtype=torch.bool, device=query.device).tril(kv_len - q_len), lowest
        )
    elif attention_mask.dtype == torch.bool:
        scores.masked_fill_(~attention_mask[:, :, None, :, :kv_len], lowest)
    else:
        scores += attention_mask[:, :, None, :, :kv_len].to(wide)
    weights = torch.softmax(scores, dim=-1).view(batch, kv_heads, groups * q_len, kv_len)
    output = torch.matmul(weights, value.to(wide)).view(batch, heads, q_len, dim).to(query.dtype).transpose(1, 2)
    if packed_index is None:
        return output.contiguous(), None
    flat = output.new_empty((int(valid.sum()), heads, dim))
    flat[packed_index[valid]] = output[valid]
    return flat[None], None


AttentionInterface.register(ATTENTION, moralscope_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)  # boolean masks where transformers builds them


@dataclass
class _Segment:
    """One context and the distinct continuations scored against it: one packed sequence."""

    request: int
    context: list[int]
    continuations: list[list[int]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.context) + sum(len(c) for c in self.continuations)


class HFEngine(Engine):
    """Scores and samples with a transformers causal LM (see the module docstring)."""

    def __init__(self, config: EngineConfig, renderer: PromptRenderer, *, model: Any = None) -> None:
        """Load ``config.model_path``, or adopt an already built ``model`` (benchmarks with random weights)."""
        super().__init__(config, renderer)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = _DTYPES[config.dtype]
        kind = "cuda" if self.device.type == "cuda" else "cpu"
        self.max_batch_tokens = int(config.options.get("max_batch_tokens", DEFAULT_MAX_BATCH_TOKENS[kind]))
        self.max_batch_sequences = int(config.options.get("max_batch_sequences", DEFAULT_MAX_BATCH_SEQUENCES[kind]))
        if self.max_batch_tokens < 1 or self.max_batch_sequences < 1:
            raise ValueError(
                "options max_batch_tokens and max_batch_sequences must be >= 1, "
                f"got {self.max_batch_tokens} and {self.max_batch_sequences}"
            )
        if model is None:
            try:
                model = AutoModelForCausalLM.from_pretrained(config.model_path, dtype=self.dtype)
            except (OSError, ValueError) as exc:
                raise EngineError(f"cannot load the model in {config.model_path}: {exc}") from exc
        model.set_attn_implementation(ATTENTION)
        self.model: Any = model.to(device=self.device, dtype=self.dtype).eval()
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 1 << 30))
        tokenizer = renderer.tokenizer
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self._eos_ids = frozenset(int(i) for i in eos_ids)

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Each continuation's summed log-probability (nats) and token ids, requests in order."""
        segments: list[_Segment] = []
        slots: list[list[tuple[int, int]]] = []  # per continuation: (segment, continuation within it)
        prompt_tokens: list[int] = []
        for index, request in enumerate(requests):
            by_context: dict[tuple[int, ...], int] = {}  # continuations are grouped by their context ids
            request_slots = []
            for continuation in request.continuations:
                context, ids = self.encode_pair(request.prompt, continuation)
                if len(context) + len(ids) > self.max_positions:
                    raise EngineError(
                        f"request {index}: {len(context)} prompt and {len(ids)} continuation tokens exceed the "
                        f"model's {self.max_positions} positions"
                    )
                at = by_context.setdefault(tuple(context), len(segments))
                if at == len(segments):
                    segments.append(_Segment(index, context))
                if ids not in segments[at].continuations:
                    segments[at].continuations.append(ids)
                request_slots.append((at, segments[at].continuations.index(ids)))
            slots.append(request_slots)
            prompt_tokens.append(max((len(k) for k in by_context), default=len(self.encode(request.prompt))))

        logprobs: list[list[float]] = [[] for _ in segments]
        order = sorted(range(len(segments)), key=lambda i: segments[i].length, reverse=True)
        with torch.inference_mode():
            for batch in self._batches(order, [s.length for s in segments]):
                for i, values in zip(batch, self._score_batch([segments[i] for i in batch]), strict=True):
                    logprobs[i] = values
        return [
            ScoreResult(
                tuple(ContinuationScore(logprobs[s][c], tuple(segments[s].continuations[c])) for s, c in found),
                count,
            )
            for found, count in zip(slots, prompt_tokens, strict=True)
        ]

    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Cut ``order`` (longest first) into batches of at most ``max_batch_tokens`` padded tokens."""
        batches: list[list[int]] = []
        for i in order:
            if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= self.max_batch_tokens:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    def _score_batch(self, segments: list[_Segment]) -> list[list[float]]:
        """Summed log-probabilities of every segment's continuations, from one forward pass."""
        width = max(s.length for s in segments)
        flat_ids: list[int] = []
        flat_positions: list[int] = []
        index = torch.full((len(segments), width), -1, dtype=torch.long)
        # the part of its sequence a token belongs to: 0 the context, k the k-th continuation, -1 padding
        parts = torch.full((len(segments), width), -1, dtype=torch.long)
        rows: dict[int, int] = {}  # flat position → row among the projected ones (shared first rows)
        target_rows, targets, owners = [], [], []  # per scored token: its row, its id, its continuation
        slot = 0
        for b, segment in enumerate(segments):
            start, n_context = len(flat_ids), len(segment.context)
            index[b, : segment.length] = torch.arange(start, start + segment.length)
            parts[b, :n_context] = 0
            flat_ids += segment.context
            flat_positions += range(n_context)
            for k, continuation in enumerate(segment.continuations, start=1):
                offset = len(flat_ids)
                parts[b, offset - start : offset - start + len(continuation)] = k
                predictors = [start + n_context - 1, *range(offset, offset + len(continuation) - 1)]
                for row, token in zip(predictors, continuation, strict=True):
                    target_rows.append(rows.setdefault(row, len(rows)))
                    targets.append(token)
                    owners.append(slot)
                slot += 1
                flat_ids += continuation
                flat_positions += range(n_context, n_context + len(continuation))

        causal = torch.ones((width, width), dtype=torch.bool).tril()
        allowed = (
            causal & ((parts[:, :, None] == parts[:, None, :]) | (parts == 0)[:, None, :]) & (parts >= 0)[:, None, :]
        )
        hidden = self.model.model(
            input_ids=torch.tensor([flat_ids], device=self.device),
            position_ids=torch.tensor([flat_positions], device=self.device),
            attention_mask=allowed[:, None].to(self.device),
            packed_index=index.to(self.device),
            use_cache=False,
        ).last_hidden_state[0]
        token_logprobs = self._token_logprobs(hidden, list(rows), target_rows, targets)
        sums = torch.zeros(slot, dtype=torch.float64).index_add_(0, torch.tensor(owners), token_logprobs.cpu()).tolist()
        out = []
        for segment in segments:
            out.append(sums[: len(segment.continuations)])
            sums = sums[len(segment.continuations) :]
        return out

    def _token_logprobs(
        self, hidden: torch.Tensor, rows: list[int], target_rows: list[int], targets: list[int]
    ) -> torch.Tensor:
        """log p(targets[i] | hidden[rows[target_rows[i]]]) in float64, projecting only those rows.

        Rows go through the vocabulary projection in chunks (bounded memory on large vocabularies) of
        at least 16 rows: BLAS takes another kernel, which rounds differently, for a matrix of a few rows.
        """
        chunks = -(-len(rows) // _PROJECTION_CHUNK)
        size = max(-(-len(rows) // chunks), _MIN_PROJECTED_ROWS)
        wanted_rows = torch.tensor(target_rows, device=self.device)
        wanted = torch.tensor(targets, device=self.device)
        out = torch.empty(len(targets), dtype=torch.float64, device=self.device)
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            padded = chunk + [chunk[0]] * (size - len(chunk))
            logits = self.model.lm_head(hidden.index_select(0, torch.tensor(padded, device=self.device))).double()
            normaliser = torch.logsumexp(logits, dim=-1)
            here = (wanted_rows >= start) & (wanted_rows < start + len(chunk))
            local = wanted_rows[here] - start
            out[here] = logits[local, wanted[here]] - normaliser[local]
        return out

    # -- generation --------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
        """Sampled text per request (seeded per request), requests in order."""
        prompts = [self.encode(r.prompt) for r in requests]
        for i, (request, prompt) in enumerate(zip(requests, prompts, strict=True)):
            if request.max_new_tokens < 1 or request.temperature < 0 or not 0 < request.top_p <= 1:
                raise ValueError(
                    f"request {i}: max_new_tokens must be >= 1, temperature >= 0 and top_p in (0, 1], got "
                    f"{request.max_new_tokens}, {request.temperature}, {request.top_p}"
                )
            if not prompt or len(prompt) + request.max_new_tokens > self.max_positions:
                raise EngineError(
                    f"request {i}: a prompt of {len(prompt)} tokens plus max_new_tokens={request.max_new_tokens} "
                    f"must fit the model's {self.max_positions} positions (and the prompt must not be empty)"
                )
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]), reverse=True)
        results: dict[int, GenerateResult] = {}
        with torch.inference_mode():
            for start in range(0, len(order), self.max_batch_sequences):
                batch = order[start : start + self.max_batch_sequences]
                outputs = self._generate_batch([requests[i] for i in batch], [prompts[i] for i in batch])
                results.update(zip(batch, outputs, strict=True))
        return [results[i] for i in range(len(requests))]

    def _generate_batch(self, requests: list[GenerateRequest], prompts: list[list[int]]) -> list[GenerateResult]:
        """Prefill the prompts (longest first), then decode one token per step, dropping finished rows."""
        logits, cache, valid = self._prefill(prompts)
        generators = [torch.Generator(device=self.device).manual_seed(r.seed) for r in requests]
        generated: list[list[int]] = [[] for _ in requests]
        finished: list[GenerateResult | None] = [None] * len(requests)
        active = list(range(len(requests)))  # batch row → request
        next_position = torch.tensor([len(p) for p in prompts])
        while True:
            tokens = _sample([requests[i] for i in active], logits, [generators[i] for i in active])
            for token, i in zip(tokens, active, strict=True):
                generated[i].append(token)
                finished[i] = self._finished(requests[i], len(prompts[i]), generated[i])
            keep = [row for row, i in enumerate(active) if finished[i] is None]
            if not keep:
                return [r for r in finished if r is not None]
            if len(keep) < len(active):
                selection = torch.tensor(keep, dtype=torch.long)
                cache.batch_select_indices(selection.to(self.device))
                valid, next_position = valid[selection], next_position[selection]
                tokens, active = [tokens[row] for row in keep], [active[row] for row in keep]
            valid = torch.cat([valid, torch.ones((len(active), 1), dtype=torch.bool)], dim=1)
            logits = self.model(
                input_ids=torch.tensor(tokens, dtype=torch.long)[:, None].to(self.device),
                attention_mask=valid[:, None, None].to(self.device),
                position_ids=next_position[:, None].to(self.device),
                past_key_values=cache,
                use_cache=True,
            ).logits[:, -1, :]
            next_position = next_position + 1

    def _prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, DynamicCache, torch.Tensor]:
        """The next-token logits of every prompt, their KV cache left-padded to one width, and its key mask.

        Prompts (longest first) are prefilled in groups under the token budget, each padded only to its
        own longest prompt, and the groups' caches are then left-padded to the batch's width and joined:
        wide decoding steps without paying for padding in the prefill.
        """
        width = len(prompts[0])
        logits, layers, valid = [], [], []
        for group in self._batches(list(range(len(prompts))), [len(p) for p in prompts]):
            group_width = len(prompts[group[0]])
            ids = torch.full((len(group), group_width), self._pad_id, dtype=torch.long)
            group_valid = torch.zeros((len(group), width), dtype=torch.bool)
            for row, i in enumerate(group):
                ids[row, group_width - len(prompts[i]) :] = torch.tensor(prompts[i])
                group_valid[row, width - len(prompts[i]) :] = True
            own = group_valid[:, width - group_width :]
            cache = DynamicCache(config=self.model.config)
            logits.append(
                self.model(
                    input_ids=ids.to(self.device),
                    attention_mask=(torch.ones((group_width, group_width), dtype=torch.bool).tril() & own[:, None, :])[
                        :, None
                    ].to(self.device),
                    position_ids=(own.long().cumsum(-1) - 1).clamp(min=0).to(self.device),
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits[:, -1, :]
            )
            pad = width - group_width
            layers.append([(_pad_left(k, pad), _pad_left(v, pad)) for k, v, *_ in cache])
            valid.append(group_valid)
        joined = [(torch.cat([k for k, _ in per]), torch.cat([v for _, v in per])) for per in zip(*layers, strict=True)]
        return torch.cat(logits), DynamicCache(ddp_cache_data=joined, config=self.model.config), torch.cat(valid)

    def _finished(self, request: GenerateRequest, prompt_tokens: int, generated: list[int]) -> GenerateResult | None:
        """The result if this sequence is done (end of sequence, a stop string, or its length), else None."""
        reason: Literal["stop", "length"] | None = None
        kept = generated
        if generated[-1] in self._eos_ids:
            reason, kept = "stop", generated[:-1]
        text = self.renderer.tokenizer.decode(kept)
        cuts = [at for stop in request.stop if (at := text.find(stop)) >= 0]
        if cuts:
            reason, text = "stop", text[: min(cuts)]
        if reason is None and len(generated) >= request.max_new_tokens:
            reason = "length"
        return None if reason is None else GenerateResult(text, prompt_tokens, len(generated), reason)

    def close(self) -> None:
        """Drop the model and return cached accelerator memory."""
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _pad_left(states: torch.Tensor, positions: int) -> torch.Tensor:
    """Cached key or value states (batch, heads, length, dim) with ``positions`` zero entries in front."""
    return torch.nn.functional.pad(states, (0, 0, positions, 0)) if positions else states


def _sample(requests: list[GenerateRequest], logits: torch.Tensor, generators: list[torch.Generator]) -> list[int]:
    """One token per row of ``logits`` (rows, vocab): greedy at temperature 0, else temperature and nucleus.

    Sampling is by inversion: one uniform draw from the row's own generator picks a token from the
    row's cumulative distribution, so rows are independent of each other and of the batch, and the whole
    batch costs one softmax, (for ``top_p < 1``) one sort and one ``searchsorted``.
    """
    logits = logits.to(torch.float64)
    temperature = torch.tensor([r.temperature for r in requests], dtype=torch.float64, device=logits.device)
    top_p = torch.tensor([r.top_p for r in requests], dtype=torch.float64, device=logits.device)
    greedy = logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature.clamp(min=1e-6)[:, None], dim=-1)
    token_ids = None
    if bool((top_p < 1).any()):
        probs, token_ids = probs.sort(dim=-1, descending=True)
        # drop a token once the mass before it already reaches top_p (the most likely token always stays)
        probs[probs.cumsum(-1) - probs >= top_p[:, None]] = 0
    cdf = probs.cumsum(-1)
    draws = torch.stack([torch.rand((), generator=g, dtype=torch.float64, device=g.device) for g in generators])
    picked = torch.searchsorted(cdf, (draws * cdf[:, -1])[:, None], right=True).clamp(max=cdf.shape[-1] - 1)
    if token_ids is not None:
        picked = token_ids.gather(-1, picked)
    sampled = torch.where(temperature == 0, greedy, picked[:, 0])
    return [int(t) for t in sampled.tolist()]
