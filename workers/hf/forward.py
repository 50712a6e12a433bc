"""Running the hf engine's work through the model: passes under a token budget, the prefix cache, shared prefixes.

A :class:`Work` is one sequence to compute: its first ``cached`` tokens come from the prefix cache, the
rest of its trunk and its branches are computed. :meth:`Forward.run` packs works into passes (at most
``max_batch_tokens`` new tokens each) and fills in their final hidden states and their trunk's keys and
values; :meth:`Forward.remember` puts a computed trunk into the cache; :meth:`Forward.share` computes,
before a batch, the prefixes that several of its sequences have in common and that the cache lacks, so
each is computed once (in rounds, shortest first, so nested shared prefixes are computed once too).

``computed`` tokens are counted per *owner* (a request index): a shared prefix counts for the first
request that needed it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workers.hf.passes import CachedKV, Pass, Segment, run_pass
from workers.hf.prefix_cache import Chunk, PrefixCache

MIN_SHARED_TOKENS = 16
"""A prefix shared within a batch is computed on its own only from this length (shorter ones cost less
than the pass that would compute them)."""


@dataclass
class Work:
    """A trunk ``tokens`` whose first ``cached`` tokens come from ``chunks``, and branches after it."""

    tokens: Sequence[int]
    cached: int
    chunks: list[Chunk]
    branches: Sequence[Sequence[int]] = ()
    owner: int = 0
    hidden: torch.Tensor | None = field(default=None, repr=False)
    """Final hidden states of the new trunk tokens, then of each branch's tokens (after :meth:`Forward.run`)."""
    kv: torch.Tensor | None = field(default=None, repr=False)
    """(layers, 2, kv_heads, new trunk tokens, head_dim), when the pass captured them."""

    @property
    def new_tokens(self) -> int:
        return len(self.tokens) - self.cached + sum(len(b) for b in self.branches)


def kv_slice(parts: Sequence[Chunk], begin: int, end: int) -> torch.Tensor:
    """Tokens ``begin:end`` of the keys and values that ``parts`` (tensor, tokens used) spell in order."""
    pieces, at = [], 0
    for tensor, used in parts:
        lo, hi = max(begin, at), min(end, at + used)
        if lo < hi:
            pieces.append(tensor[:, :, :, lo - at : hi - at])
        at += used
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=3)


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def plan_shared(
    sequences: dict[tuple[int, ...], int], minimum: int = MIN_SHARED_TOKENS
) -> list[dict[tuple[int, ...], int]]:
    """Rounds (shortest prefixes first) of the prefixes at least two ``sequences`` share, each mapped to the
    smallest owner among the sequences that share it. A sequence's longest shared prefix is the longer of
    its common prefixes with its neighbours in sorted order."""
    ordered = sorted(sequences)
    shared: dict[tuple[int, ...], int] = {}
    for i, sequence in enumerate(ordered):
        before = _common(ordered[i - 1], sequence) if i else 0
        after = _common(sequence, ordered[i + 1]) if i + 1 < len(ordered) else 0
        length = max(before, after)
        if length >= minimum:
            prefix = sequence[:length]
            shared[prefix] = min(shared.get(prefix, sequences[sequence]), sequences[sequence])
    return [*plan_shared(shared, minimum), shared] if shared else []


class Forward:
    """Passes through one model, with an optional prefix cache (see the module docstring)."""

    def __init__(
        self, model: Any, backend: Any, device: torch.device, max_batch_tokens: int, cache: PrefixCache | None
    ) -> None:
        self.model = model
        self.backend = backend
        self.device = device
        self.max_batch_tokens = max_batch_tokens
        self.cache = cache
        self.hit_tokens = 0
        """Tokens served from the cache so far."""

    def lookup(self, tokens: Sequence[int], limit: int) -> tuple[int, list[Chunk]]:
        """The cached length (at most ``limit``) of ``tokens`` and its chunks; (0, []) without a cache."""
        if self.cache is None or limit <= 0:
            return 0, []
        length, chunks = self.cache.match(tokens[:limit])
        return length, chunks

    def work(
        self, tokens: Sequence[int], branches: Sequence[Sequence[int]] = (), *, owner: int = 0, keep_last: bool = True
    ) -> Work:
        """A work for ``tokens`` using the cache; with ``keep_last`` its last token is computed even if cached
        (its hidden state is needed)."""
        cached, chunks = self.lookup(tokens, len(tokens) - 1 if keep_last else len(tokens))
        self.hit_tokens += cached
        return Work(tokens, cached, chunks, branches, owner)

    def run(self, works: Sequence[Work], *, capture: bool) -> Iterator[list[Work]]:
        """Compute ``works`` in passes (largest first, at most ``max_batch_tokens`` new tokens each, a larger
        work alone); yields each pass's works with ``hidden`` (and, with ``capture``, ``kv``) set."""
        pending = sorted((w for w in works if w.new_tokens), key=lambda w: w.new_tokens, reverse=True)
        while pending:
            batch, budget = [pending[0]], self.max_batch_tokens - pending[0].new_tokens
            for other in pending[1:]:
                if other.new_tokens <= budget:
                    batch.append(other)
                    budget -= other.new_tokens
            chosen = {id(w) for w in batch}
            pending = [w for w in pending if id(w) not in chosen]
            yield self._pass(batch, capture)

    def _pass(self, works: list[Work], capture: bool) -> list[Work]:
        chunks = list({id(t): t for w in works for t, _ in w.chunks}.values())
        source = CachedKV(sum(w.new_tokens for w in works), chunks)
        segments = [Segment(source.slots(w.chunks), w.tokens[w.cached :], w.branches) for w in works]
        forward_pass = Pass(segments, source, backend=self.backend, device=self.device, capture=capture)
        hidden = run_pass(self.model, forward_pass)
        for work, segment in zip(works, segments, strict=True):
            work.hidden = hidden[segment.start : segment.start + work.new_tokens]
            if forward_pass.captured is not None:
                trunk = len(work.tokens) - work.cached
                work.kv = forward_pass.captured[:, :, :, segment.start : segment.start + trunk]
        return works

    def remember(self, work: Work) -> None:
        """Cache a computed work's trunk (its cached part and its new keys and values)."""
        if self.cache is None or work.kv is None:
            return
        parts = [*work.chunks, (work.kv, len(work.tokens) - work.cached)]
        self.cache.insert(work.tokens, lambda begin, end: kv_slice(parts, begin, end))

    def share(self, sequences: dict[tuple[int, ...], int], computed: list[int]) -> None:
        """Compute and cache the uncached prefixes that several ``sequences`` (→ owner) share, adding the
        tokens computed to ``computed[owner]``."""
        if self.cache is None:
            return
        for shared in plan_shared(sequences):
            works = [self.work(prefix, owner=owner, keep_last=False) for prefix, owner in shared.items()]
            for done in self.run(works, capture=True):
                for work in done:
                    computed[work.owner] += work.new_tokens
                    self.remember(work)
                    work.hidden = work.kv = None
