"""Attention over a :class:`~workers.hf.passes.Pass`, registered with transformers as ``"moralscope"``.

Two arithmetics read the same layout (each new token attends to its segment's cached keys, its trunk
up to itself and, for a branch token, its own branch up to itself):

- :class:`~workers.hf.exact.ExactAttention` (CPU, ``batch_invariant``): a query's result is a function
  of its own keys only, bit for bit (fixed-shape products over position-ordered key blocks).
- :class:`DenseAttention` (GPU, or ``batch_invariant: false``): each segment padded to the pass's
  longest, one ``scaled_dot_product_attention`` call with a mask, in the model's dtype. Fast, and equal
  to the exact one only within rounding.

Called without a pass (a plain ``model(ids)`` of a model loaded with ``attn_implementation="moralscope"``)
each batch row is one causal sequence without padding, computed the exact way.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AttentionInterface

from workers.hf.exact import ExactAttention
from workers.hf.passes import KVSource, Pass, Segment, segment_layout

ATTENTION = "moralscope"


class DenseAttention:
    """Per-segment padded attention through ``scaled_dot_product_attention`` (see the module docstring)."""

    def compile(self, segments: Sequence[Segment], source: KVSource, groups: int, device: torch.device) -> Any:
        layout = segment_layout(segments, source)
        width = max(len(k) for k in layout.key_slots)
        height = max(len(r) for r in layout.row_index)
        slots = torch.full((len(segments), width), source.zero_slot, dtype=torch.long)
        rows = torch.full((len(segments), height), source.n_new, dtype=torch.long)
        mask = torch.zeros((len(segments), height, width), dtype=torch.bool)
        for s in range(len(segments)):
            keys, owners = layout.key_slots[s], layout.key_owner[s]
            key_pos = torch.arange(len(keys))
            key_pos[layout.trunk_len[s] :] = layout.row_pos[s][
                len(layout.row_pos[s]) - (len(keys) - layout.trunk_len[s]) :
            ]
            slots[s, : len(keys)] = keys
            rows[s, : len(layout.row_index[s])] = layout.row_index[s]
            allowed = (key_pos[None] <= layout.row_pos[s][:, None]) & (
                (owners[None] == 0) | (owners[None] == layout.row_owner[s][:, None])
            )
            mask[s, : len(layout.row_index[s]), : len(keys)] = allowed
        mask[:, :, 0] |= ~mask.any(-1)  # padding rows attend to one slot instead of none (no NaN)
        return slots.to(device), rows.to(device), mask[:, None].to(device)

    def __call__(
        self, compiled: Any, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float
    ) -> torch.Tensor:
        slots, rows, mask = compiled
        heads, n_new, dim = query.shape
        groups = heads // keys.shape[0]
        padded = torch.cat([query, query.new_zeros((heads, 1, dim))], dim=1)
        q = padded[:, rows].transpose(0, 1)  # (segments, heads, height, dim)
        k = keys[:, slots].to(query.dtype).transpose(0, 1).repeat_interleave(groups, dim=1)
        v = values[:, slots].to(query.dtype).transpose(0, 1).repeat_interleave(groups, dim=1)
        result = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling)
        out = torch.empty_like(padded)
        out[:, rows.flatten()] = result.transpose(0, 1).reshape(heads, -1, dim)
        return out[:, :n_new]


_PLAIN = ExactAttention()


@functools.lru_cache(maxsize=32)
def _causal_rows(batch: int, n: int, groups: int, device: torch.device) -> Any:
    """The exact arithmetic's layout of ``batch`` causal rows of ``n`` tokens (the same for every layer)."""
    segments = [Segment(torch.zeros(0, dtype=torch.long), range(n)) for _ in range(batch)]
    for row, segment in enumerate(segments):
        segment.start = row * n
    return _PLAIN.compile(segments, KVSource(batch * n), groups, device)


def moralscope_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    moralscope_pass: Pass | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: query (batch, heads, n, dim), key/value (batch, kv_heads,
    n, dim) of the new tokens; returns (batch, n, heads, dim). Keys and values are kept kv-head-major,
    (kv_heads, slots, dim), as they arrive. ``attention_mask`` is ignored (the pass,
    or plain causality, says what each token sees)."""
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    batch, heads, n, dim = query.shape
    if moralscope_pass is None:  # each row one causal sequence
        q, k, v = (x.transpose(0, 1).reshape(x.shape[1], batch * n, dim) for x in (query, key, value))
        source = KVSource(batch * n)
        keys, values = source.keys_values(0, k, v)
        compiled = _causal_rows(batch, n, heads // key.shape[1], query.device)
        out = _PLAIN(compiled, q, keys, values, scale).view(heads, batch, n, dim)
        return out.permute(1, 2, 0, 3), None
    forward_pass = moralscope_pass
    layer, layers = int(getattr(module, "layer_idx")), int(getattr(module, "config").num_hidden_layers)  # noqa: B009
    keys, values = forward_pass.keys_values(layer, layers, key[0], value[0])
    if forward_pass.compiled is None:
        backend = forward_pass.backend
        groups = heads // key.shape[1]
        forward_pass.compiled = backend.compile(forward_pass.segments, forward_pass.source, groups, query.device)
    out = forward_pass.backend(forward_pass.compiled, query[0], keys, values, scale)
    return out.transpose(0, 1)[None], None


AttentionInterface.register(ATTENTION, moralscope_attention)
