"""One forward pass of the hf engine: which tokens it computes and which cached keys they attend to.

A pass computes the *new* tokens of several :class:`Segment`\\ s, laid end to end in one flat row (no
padding, so the linear layers see only real tokens). A segment is a sequence whose first tokens are
already cached (their keys and values come from a :class:`KVSource`), followed by its **trunk** (the
tokens computed now) and optional **branches**: continuations of the trunk that never see one another
(a prompt's candidate answers, all scored in the same pass). Positions continue from the cached prefix,
so a token's position is the same whether its prefix was cached or computed alongside it.

Attention (:mod:`workers.hf.attention`) reads the pass from the ``moralscope_pass`` keyword argument
that transformers forwards to the attention function, and on the way can keep every new token's keys
and values (``capture``) for the prefix cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Segment:
    """A sequence of a pass: cached keys at positions ``0..P-1``, then the trunk, then branches."""

    prefix: torch.Tensor
    """Slots of the cached keys in the pass's :class:`KVSource`, in position order (int64, length P)."""
    tokens: Sequence[int]
    """Trunk tokens computed in this pass, at positions ``P, P+1, …``."""
    branches: Sequence[Sequence[int]] = ()
    """Continuations of the trunk, each starting right after it and seeing the trunk and itself only."""
    start: int = field(default=0, init=False)
    """Flat index of the first trunk token in the pass (set by :class:`Pass`)."""

    @property
    def new_tokens(self) -> int:
        return len(self.tokens) + sum(len(b) for b in self.branches)


class KVSource:
    """Where a pass's keys and values live, as (kv_heads, slots, head_dim) tensors per layer.

    The base class holds the new tokens only. ``new_slots[i]`` is the slot of new token ``i`` (here ``i``);
    ``zero_slot`` is a slot of zeros that pads key blocks.
    """

    def __init__(self, n_new: int) -> None:
        self.n_new = n_new
        self.new_slots = torch.arange(n_new)
        self.zero_slot = n_new

    def keys_values(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zero = key.new_zeros((key.shape[0], 1, key.shape[2]))
        return torch.cat([key, zero], dim=1), torch.cat([value, zero], dim=1)


class CachedKV(KVSource):
    """New tokens first, then cached chunks ((layers, 2, kv_heads, n, head_dim) tensors), then a zero slot."""

    def __init__(self, n_new: int, chunks: Sequence[torch.Tensor]) -> None:
        super().__init__(n_new)
        self.chunks = list(chunks)
        self.offsets: dict[int, int] = {}
        offset = n_new
        for chunk in self.chunks:
            self.offsets[id(chunk)] = offset
            offset += chunk.shape[3]
        self.zero_slot = offset

    def slots(self, parts: Sequence[tuple[torch.Tensor, int]]) -> torch.Tensor:
        """Slots of a prefix made of the first ``used`` tokens of each chunk in ``parts``."""
        pieces = [torch.arange(self.offsets[id(c)], self.offsets[id(c)] + used) for c, used in parts]
        return torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long)

    def keys_values(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zero = key.new_zeros((key.shape[0], 1, key.shape[2]))
        keys = torch.cat([key, *(c[layer, 0].to(key.dtype) for c in self.chunks), zero], dim=1)
        values = torch.cat([value, *(c[layer, 1].to(value.dtype) for c in self.chunks), zero], dim=1)
        return keys, values


class DenseKV(KVSource):
    """A decoding batch's keys and values, (layers, 2, kv_heads, rows × width, head_dim), written in place.

    Row ``r`` of the buffer holds one sequence's keys and values at slots ``r × width + position``; its last
    row is never written and stays zero (the zero slot is its first). Each step's new tokens are stored at
    ``write_slots`` before attention reads the buffer, and each new token sees exactly the slots of its row
    up to its own, so an arithmetic may read the rows as they lie (see
    :meth:`workers.hf.exact.ExactAttention.compile`).
    """

    def __init__(self, buffer: torch.Tensor, write_slots: torch.Tensor, width: int) -> None:
        super().__init__(len(write_slots))
        self.buffer = buffer
        self.width = width
        self.new_slots = write_slots.cpu()
        self.write_slots = write_slots.to(buffer.device)
        self.zero_slot = buffer.shape[3] - width

    def keys_values(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.buffer[layer, 0, :, self.write_slots] = key.to(self.buffer.dtype)
        self.buffer[layer, 1, :, self.write_slots] = value.to(self.buffer.dtype)
        return self.buffer[layer, 0], self.buffer[layer, 1]


@dataclass
class SegmentLayout:
    """Every segment's key slots, positions and owners (0: trunk or cached; k: branch k), and its queries."""

    key_slots: list[torch.Tensor]
    key_owner: list[torch.Tensor]
    row_index: list[torch.Tensor]
    row_pos: list[torch.Tensor]
    row_owner: list[torch.Tensor]
    trunk_len: list[int]
    """Cached plus trunk keys of each segment (its branch keys follow them in ``key_slots``)."""


def segment_layout(segments: Sequence[Segment], source: KVSource) -> SegmentLayout:
    """Every segment's key slots (cached, trunk, then each branch), their owners and its query rows."""
    out = SegmentLayout([], [], [], [], [], [])
    for segment in segments:
        cached, trunk = len(segment.prefix), len(segment.tokens)
        start, end = segment.start, cached + trunk
        slots = [segment.prefix.cpu().long(), source.new_slots[start : start + trunk]]
        owners, rows = [torch.zeros(end, dtype=torch.long)], [torch.arange(start, start + trunk)]
        positions, row_owners = [torch.arange(cached, end)], [torch.zeros(trunk, dtype=torch.long)]
        start += trunk
        for k, branch in enumerate(segment.branches, start=1):
            slots.append(source.new_slots[start : start + len(branch)])
            owners.append(torch.full((len(branch),), k, dtype=torch.long))
            rows.append(torch.arange(start, start + len(branch)))
            positions.append(torch.arange(end, end + len(branch)))
            row_owners.append(owners[-1])
            start += len(branch)
        out.key_slots.append(torch.cat(slots))
        out.key_owner.append(torch.cat(owners))
        out.row_index.append(torch.cat(rows))
        out.row_pos.append(torch.cat(positions))
        out.row_owner.append(torch.cat(row_owners))
        out.trunk_len.append(end)
    return out


class Pass:
    """The layout of one forward pass (see the module docstring)."""

    def __init__(
        self, segments: Sequence[Segment], source: KVSource, *, backend: Any, device: torch.device, capture: bool
    ) -> None:
        self.segments = list(segments)
        self.source = source
        self.backend = backend
        """The attention arithmetic (:class:`workers.hf.attention.ExactAttention` or ``DenseAttention``)."""
        self.compiled: Any = None
        """The backend's index tensors for this pass, built at the first layer and reused by the others."""
        ids: list[int] = []
        positions: list[int] = []
        for segment in self.segments:
            segment.start = len(ids)
            cached = len(segment.prefix)
            trunk_end = cached + len(segment.tokens)
            ids += segment.tokens
            positions += range(cached, trunk_end)
            for branch in segment.branches:
                ids += branch
                positions += range(trunk_end, trunk_end + len(branch))
        if len(ids) != source.n_new:
            raise ValueError(f"the pass has {len(ids)} new tokens but its key source expects {source.n_new}")
        self.input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        self.positions = torch.tensor([positions], dtype=torch.long, device=device)
        self.capture = capture
        self.captured: torch.Tensor | None = None
        """(layers, 2, kv_heads, new tokens, head_dim): every new token's keys and values, when ``capture``."""

    @property
    def n_new(self) -> int:
        return self.source.n_new

    def keys_values(
        self, layer: int, layers: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's key and value slots after adding the new tokens' ``key``/``value`` (kv_heads, n_new, dim)."""
        if self.capture:
            if self.captured is None:
                self.captured = key.new_empty((layers, 2, *key.shape))
            self.captured[layer, 0] = key
            self.captured[layer, 1] = value
        return self.source.keys_values(layer, key, value)


def run_pass(model: Any, forward_pass: Pass) -> torch.Tensor:
    """The final hidden states (n_new, hidden) of a pass's new tokens."""
    output = model.model(
        input_ids=forward_pass.input_ids,
        position_ids=forward_pass.positions,
        moralscope_pass=forward_pass,
        use_cache=False,
    )
    hidden: torch.Tensor = output.last_hidden_state[0]
    return hidden
