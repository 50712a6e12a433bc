"""Scoring with the hf engine: every candidate's summed log-probability, each context computed once.

Requests are tokenised by the shared rule (:meth:`workers.engine.Engine.encode_pair`); a request that
cannot be scored (a continuation that adds no tokens, an empty prompt, more tokens than the model's
positions) gets an error result and the rest of the batch is scored. Continuations are grouped by their
context ids across the whole batch, so a context is one :class:`~workers.hf.forward.Work`: the context
is its trunk (after whatever the prefix cache holds of it, its last token always computed) and its
distinct continuations are its branches. Before that, the contexts' shared uncached prefixes are computed
once (:meth:`~workers.hf.forward.Forward.share`), and afterwards every context is cached.

Only the rows whose next-token log-probability is needed (a context's last token, every continuation
token but the last) go through the vocabulary projection, those of a whole pass together (reading the
projection's 28M weights once per pass, not once per context) in chunks of at most 512 rows, and the
log-softmax is taken in float64 (a float32 log-sum-exp over a 49k vocabulary is off by ~1e-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from schemas.inference import ContinuationScore, ScoreRequest, ScoreResult
from workers.engine import RequestError
from workers.hf.forward import Forward, Work

_PROJECTION_CHUNK = 512


@dataclass
class _Context:
    """A distinct context of the batch and its distinct continuations."""

    tokens: tuple[int, ...]
    owner: int
    """The first request that has this context (its computed tokens are counted there)."""
    continuations: list[tuple[int, ...]] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)

    def add(self, continuation: list[int]) -> int:
        key = tuple(continuation)
        if key not in self.continuations:
            self.continuations.append(key)
        return self.continuations.index(key)


def score(engine: Any, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
    """Each continuation's summed log-probability (nats) and token ids, requests in order (see the module docstring)."""
    contexts: dict[tuple[int, ...], _Context] = {}
    # per request: (context, continuation index) per candidate, or why it cannot be scored
    slots: list[list[tuple[_Context, int]] | str] = []
    prompt_tokens: list[int] = []
    for index, request in enumerate(requests):
        try:
            pairs = [engine.encode_pair(request.prompt, c) for c in request.continuations]
            longest = max((len(ctx) + len(cont) for ctx, cont in pairs), default=0)
            if longest > engine.max_positions:
                raise RequestError(
                    f"{longest} prompt and continuation tokens exceed the model's {engine.max_positions} positions"
                )
        except RequestError as exc:
            slots.append(str(exc))
            prompt_tokens.append(len(engine.encode(request.prompt)))
            continue
        found = []
        for context, continuation in pairs:
            entry = contexts.setdefault(tuple(context), _Context(tuple(context), index))
            found.append((entry, entry.add(continuation)))
        slots.append(found)
        prompt_tokens.append(max((len(ctx) for ctx, _ in pairs), default=len(engine.encode(request.prompt))))

    forward: Forward = engine.forward
    computed = [0] * len(requests)
    with torch.inference_mode():
        heads: dict[tuple[int, ...], int] = {}
        for c in contexts.values():  # a context's last token is always computed with its continuations
            heads[c.tokens[:-1]] = min(heads.get(c.tokens[:-1], c.owner), c.owner)
        forward.share(heads, computed)
        works = [forward.work(c.tokens, c.continuations, owner=c.owner) for c in contexts.values()]
        context_of = {id(w): c for w, c in zip(works, contexts.values(), strict=True)}
        for done in forward.run(works, capture=forward.cache is not None):
            for work, logprobs in zip(done, _continuation_logprobs(engine, done), strict=True):
                context_of[id(work)].logprobs = logprobs
                computed[work.owner] += work.new_tokens
                forward.remember(work)
                work.hidden = work.kv = None
    results = []
    for slot, tokens, count in zip(slots, prompt_tokens, computed, strict=True):
        if isinstance(slot, str):
            results.append(ScoreResult.failed(slot, prompt_tokens=tokens))
            continue
        scores = tuple(ContinuationScore(c.logprobs[k], c.continuations[k]) for c, k in slot)
        results.append(ScoreResult(scores, tokens, count))
    return results


def _continuation_logprobs(engine: Any, works: Sequence[Work]) -> list[list[float]]:
    """Summed log-probabilities of each context work's branches, from a pass's hidden states: the rows
    that predict a continuation token, of all the pass's works, go through one vocabulary projection."""
    hidden: list[torch.Tensor] = []
    rows: list[int] = []
    targets: list[int] = []
    owners: list[int] = []
    at_row = 0
    branch = 0
    for work in works:
        assert work.hidden is not None
        trunk = len(work.tokens) - work.cached
        predictors: list[int] = []
        at = trunk
        for continuation in work.branches:
            predictors += [trunk - 1, *range(at, at + len(continuation) - 1)]
            targets += continuation
            owners += [branch] * len(continuation)
            at += len(continuation)
            branch += 1
        distinct = sorted(set(predictors))
        where = {row: at_row + i for i, row in enumerate(distinct)}
        rows += [where[r] for r in predictors]
        hidden.append(work.hidden[distinct])
        at_row += len(distinct)
    values = token_logprobs(engine, torch.cat(hidden), rows, targets)
    sums = torch.zeros(branch, dtype=torch.float64).index_add_(0, torch.tensor(owners), values.cpu()).tolist()
    out, first = [], 0
    for work in works:
        out.append([float(v) for v in sums[first : first + len(work.branches)]])
        first += len(work.branches)
    return out


def token_logprobs(engine: Any, hidden: torch.Tensor, rows: list[int], targets: list[int]) -> torch.Tensor:
    """log p(targets[i] | hidden[rows[i]]) in float64, projecting each hidden row once, 512 rows at a time."""
    wanted_rows = torch.tensor(rows, device=hidden.device)
    wanted = torch.tensor(targets, device=hidden.device)
    out = torch.empty(len(targets), dtype=torch.float64, device=hidden.device)
    for start in range(0, len(hidden), _PROJECTION_CHUNK):
        logits = engine.model.lm_head(hidden[start : start + _PROJECTION_CHUNK]).double()
        normaliser = torch.logsumexp(logits, dim=-1)
        here = (wanted_rows >= start) & (wanted_rows < start + len(logits))
        local = wanted_rows[here] - start
        out[here] = logits[local, wanted[here]] - normaliser[local]
    return out
