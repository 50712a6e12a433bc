"""Sampling with the hf engine: prefill through the prefix cache, then batched decoding, seeded per request.

Prompts (longest first) are decoded ``max_batch_sequences`` at a time. A batch's prompts are prefilled in
passes under the token budget, each after whatever the prefix cache holds of it (prefixes shared by
several prompts of the call are computed once before, see :meth:`~workers.hf.forward.Forward.share`);
their keys and values are laid into one buffer, a row of whole key blocks per prompt at absolute positions
(so the exact attention reads each row's blocks where they lie, without gathering), and decoding adds
one token per unfinished row per step, with one ``torch.Generator`` per request, so the same request and
seed give the same text whatever it is batched with. When a row finishes, its prompt and sampled tokens
(all but the last, which was never run through the model) go into the prefix cache: the CoT answer prompt
built from them then only computes what it adds (its re-tokenised text hits up to its first difference).

``temperature == 0`` is greedy; ``top_p < 1`` keeps the smallest set of most likely tokens whose mass
reaches ``top_p``. Text ends before the first stop string or at an end-of-sequence token;
``completion_tokens`` counts every sampled token, including one that completed a stop string or was the
end-of-sequence. ``computed_tokens`` counts the prompt tokens not served from the cache plus the sampled
tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from schemas.inference import GenerateRequest, GenerateResult
from workers.hf.exact import KEY_BLOCK
from workers.hf.forward import Forward, kv_slice
from workers.hf.passes import DenseKV, Pass, Segment, run_pass


def generate(engine: Any, requests: Sequence[GenerateRequest]) -> list[GenerateResult]:
    """Sampled text per request (seeded per request), requests in order (see the module docstring)."""
    prompts: dict[int, list[int]] = {}
    results: dict[int, GenerateResult] = {}
    for i, request in enumerate(requests):
        if request.max_new_tokens < 1 or request.temperature < 0 or not 0 < request.top_p <= 1:
            raise ValueError(
                f"request {i}: max_new_tokens must be >= 1, temperature >= 0 and top_p in (0, 1], got "
                f"{request.max_new_tokens}, {request.temperature}, {request.top_p}"
            )
        prompt = engine.encode(request.prompt)
        if not prompt or len(prompt) + request.max_new_tokens > engine.max_positions:
            results[i] = GenerateResult.failed(
                f"a prompt of {len(prompt)} tokens plus max_new_tokens={request.max_new_tokens} must fit the "
                f"model's {engine.max_positions} positions (and the prompt must not be empty)",
                prompt_tokens=len(prompt),
            )
        else:
            prompts[i] = prompt
    order = sorted(prompts, key=lambda i: len(prompts[i]), reverse=True)
    computed = [0] * len(requests)
    forward: Forward = engine.forward
    with torch.inference_mode():
        heads: dict[tuple[int, ...], int] = {}
        for i in order:
            heads[tuple(prompts[i][:-1])] = min(heads.get(tuple(prompts[i][:-1]), i), i)
        forward.share(heads, computed)
        for start in range(0, len(order), engine.max_batch_sequences):
            batch = order[start : start + engine.max_batch_sequences]
            outputs = _generate_batch(
                engine, [requests[i] for i in batch], [prompts[i] for i in batch], batch, computed
            )
            results.update(zip(batch, outputs, strict=True))
    return [results[i] for i in range(len(requests))]


def _generate_batch(
    engine: Any, requests: list[GenerateRequest], prompts: list[list[int]], owners: list[int], computed: list[int]
) -> list[GenerateResult]:
    """Prefill a batch's prompts, then decode one token per unfinished row per step."""
    forward: Forward = engine.forward
    longest = max(len(p) + r.max_new_tokens for p, r in zip(prompts, requests, strict=True))
    width = -(-longest // KEY_BLOCK) * KEY_BLOCK  # rows of whole key blocks: decoding reads them in place
    works = [forward.work(p, owner=o) for p, o in zip(prompts, owners, strict=True)]
    row_of = {id(w): row for row, w in enumerate(works)}
    last_hidden: list[torch.Tensor | None] = [None] * len(works)
    buffer: torch.Tensor | None = None
    for done in forward.run(works, capture=True):
        for work in done:
            assert work.hidden is not None
            assert work.kv is not None
            row = row_of[id(work)]
            if buffer is None:  # (layers, 2, kv_heads, (rows + a zero row) × width, head_dim)
                layers, _, kv_heads, _, dim = work.kv.shape
                buffer = work.kv.new_zeros((layers, 2, kv_heads, (len(works) + 1) * width, dim))
            parts = [*work.chunks, (work.kv, len(work.tokens) - work.cached)]
            buffer[:, :, :, row * width : row * width + len(work.tokens)] = kv_slice(parts, 0, len(work.tokens))
            last_hidden[row] = work.hidden[len(work.tokens) - work.cached - 1]
            computed[work.owner] += work.new_tokens
            work.hidden = work.kv = None
    assert buffer is not None
    logits = engine.model.lm_head(torch.stack([h for h in last_hidden if h is not None]))
    generators = [torch.Generator(device=engine.device).manual_seed(r.seed) for r in requests]
    generated: list[list[int]] = [[] for _ in requests]
    finished: list[GenerateResult | None] = [None] * len(requests)
    active = list(range(len(requests)))
    while True:
        tokens = sample([requests[i] for i in active], logits, [generators[i] for i in active])
        for token, i in zip(tokens, active, strict=True):
            generated[i].append(token)
            finished[i] = _finished(engine, requests[i], len(prompts[i]), generated[i], computed[owners[i]])
            if finished[i] is not None:
                _remember(forward, buffer, i * width, prompts[i] + generated[i][:-1])
        kept = [(i, t) for i, t in zip(active, tokens, strict=True) if finished[i] is None]
        if not kept:
            return [r for r in finished if r is not None]
        active, tokens = [i for i, _ in kept], [t for _, t in kept]
        positions = [len(prompts[i]) + len(generated[i]) - 1 for i in active]
        segments = [
            Segment(torch.arange(i * width, i * width + p), [t])
            for i, p, t in zip(active, positions, tokens, strict=True)
        ]
        slots = torch.tensor([i * width + p for i, p in zip(active, positions, strict=True)])
        source = DenseKV(buffer, slots, width)
        step = Pass(segments, source, backend=forward.backend, device=engine.device, capture=False)
        logits = engine.model.lm_head(run_pass(engine.model, step))


def _remember(forward: Forward, buffer: torch.Tensor, offset: int, tokens: list[int]) -> None:
    """Cache a finished row: its prompt and the sampled tokens that went through the model."""
    if forward.cache is not None:
        forward.cache.insert(tokens, lambda begin, end: buffer[:, :, :, offset + begin : offset + end])


def _finished(
    engine: Any, request: GenerateRequest, prompt_tokens: int, generated: list[int], computed: int
) -> GenerateResult | None:
    """The result if this sequence is done (end of sequence, a stop string, or its length), else None."""
    reason: Literal["stop", "length"] | None = None
    kept = generated
    if generated[-1] in engine.eos_ids:
        reason, kept = "stop", generated[:-1]
    text = engine.renderer.tokenizer.decode(kept)
    cuts = [at for stop in request.stop if (at := text.find(stop)) >= 0]
    if cuts:
        reason, text = "stop", text[: min(cuts)]
    if reason is None and len(generated) >= request.max_new_tokens:
        reason = "length"
    if reason is None:
        return None
    return GenerateResult(text, prompt_tokens, len(generated), reason, computed + len(generated))


def sample(requests: list[GenerateRequest], logits: torch.Tensor, generators: list[torch.Generator]) -> list[int]:
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
