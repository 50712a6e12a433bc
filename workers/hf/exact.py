"""The exact attention arithmetic: a query's result is a function of its own keys only, bit for bit.

Keys sit in **blocks** of :data:`KEY_BLOCK` slots at their absolute positions (block ``j`` holds positions
``64j … 64j+63`` of the query's own sequence, wherever they were cached or computed); queries are cut into
**tiles** of a verified size (:func:`verified_query_tiles`). Each (tile, block) pair is one fixed-shape
product; the softmax uses the row's exact maximum; and the per-block sums and weighted values are added
block after block in position order, so a masked block adds an exact zero. Nothing in it depends on how
many sequences, keys or queries share the pass. It runs in float32 (half-precision inputs are widened),
like stock attention, on (kv_heads, slots, head_dim) keys and values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workers.hf.invariant import consistent_row_counts, tile_plan
from workers.hf.passes import DenseKV, KVSource, Segment, segment_layout

KEY_BLOCK = 64
"""Key slots per block."""
QUERY_TILES = (64, 32, 16, 8, 4, 2, 1)
"""Candidate query counts of a tile, largest first (a tile's products have ``groups × size`` rows)."""


@dataclass
class _TileClass:
    """The tiles of one size and their (tile, block) work items, sorted by block position."""

    size: int
    rows: torch.Tensor  # (tiles, size) flat query index; padding points at the dummy row n_new
    w_tile: torch.Tensor
    w_block: torch.Tensor
    mask: torch.Tensor  # (items, groups*size, KEY_BLOCK): rows are (query head in group, query in tile)
    slices: list[tuple[int, int]]


@dataclass
class _RowBlocks:
    """A decoding step over a :class:`DenseKV` buffer whose rows are whole key blocks: every row's blocks are
    read where they lie (one query per row, no gathering); rows without a query are computed and dropped."""

    rows: torch.Tensor  # (n_new,) the buffer row of each new token
    mask: torch.Tensor  # (rows × blocks, 1, KEY_BLOCK): the keys each row's query sees
    total_rows: int
    blocks: int


class ExactAttention:
    """Fixed-shape, position-ordered attention in float32 (see the module docstring)."""

    def __init__(self, query_tiles: Sequence[int] = QUERY_TILES) -> None:
        self.query_tiles = tuple(query_tiles)

    def compile(self, segments: Sequence[Segment], source: KVSource, groups: int, device: torch.device) -> Any:
        """Blocks, tiles (a segment's rows in order, cut by :func:`tile_plan`) and (tile, block) work items;
        for a decoding step over rows of whole blocks, just which row each query reads (:class:`_RowBlocks`)."""
        if isinstance(source, DenseKV) and source.width % KEY_BLOCK == 0:
            return _row_blocks(source, device)
        block = KEY_BLOCK
        layout = segment_layout(segments, source)
        n_new = source.n_new
        block_slots: list[torch.Tensor] = []
        block_start: list[int] = []
        block_kind: list[int] = []  # -1: full trunk block (all rows); 0: trunk rows only; k: branch k only
        tiles: dict[
            int, list[tuple[list[int], list[int], list[int], list[int]]]
        ] = {}  # rows, positions, owners, blocks

        def add_block(slots: torch.Tensor, start: int, kind: int) -> tuple[int, int, int]:
            padded = torch.full((block,), source.zero_slot, dtype=torch.long)
            padded[: len(slots)] = slots
            block_slots.append(padded)
            block_start.append(start)
            block_kind.append(kind)
            return len(block_slots) - 1, start, kind

        for s, segment in enumerate(segments):
            keys, trunk_len = layout.key_slots[s], layout.trunk_len[s]
            full = trunk_len // block
            mine = [add_block(keys[j * block : (j + 1) * block], j * block, -1) for j in range(full)]
            if trunk_len % block:
                mine.append(add_block(keys[full * block : trunk_len], full * block, 0))
            branch_at = trunk_len
            for k, branch in enumerate(segment.branches, start=1):
                own = torch.cat([keys[full * block : trunk_len], keys[branch_at : branch_at + len(branch)]])
                branch_at += len(branch)
                for i in range(0, len(own), block):
                    mine.append(add_block(own[i : i + block], full * block + i, k))
            # the segment's rows in order: the trunk's new tokens, then each branch's (flat rows are consecutive)
            first_position = trunk_len - len(segment.tokens)
            positions = list(range(first_position, trunk_len))
            owners = [0] * len(segment.tokens)
            for k, branch in enumerate(segment.branches, start=1):
                positions += range(trunk_len, trunk_len + len(branch))
                owners += [k] * len(branch)
            for start, size in tile_plan(len(positions), self.query_tiles):
                used = min(size, len(positions) - start)
                tile_pos, tile_owner = positions[start : start + used], owners[start : start + used]
                reach: dict[int, int] = {}  # owner → the furthest position of its rows in this tile
                for position, row_owner in zip(tile_pos, tile_owner, strict=True):
                    reach[row_owner] = max(reach.get(row_owner, -1), position)
                furthest = max(reach.values())
                needed = [b for b, begin, kind in mine if begin <= (furthest if kind == -1 else reach.get(kind, -1))]
                tile_rows = list(range(segment.start + start, segment.start + start + used)) + [n_new] * (size - used)
                padding = size - used
                tiles.setdefault(size, []).append(
                    (tile_rows, tile_pos + [-1] * padding, tile_owner + [-2] * padding, needed)
                )

        slots = torch.stack(block_slots).to(device)
        starts = torch.tensor(block_start)
        classes = []
        for size, members in sorted(tiles.items(), reverse=True):
            w_tile = torch.tensor([t for t, m in enumerate(members) for _ in m[3]], dtype=torch.long)
            w_block = torch.tensor([b for m in members for b in m[3]], dtype=torch.long)
            order = torch.argsort(starts[w_block], stable=True)
            w_tile, w_block = w_tile[order], w_block[order]
            rows = torch.tensor([m[0] for m in members], dtype=torch.long)
            pos = torch.tensor([m[1] for m in members], dtype=torch.long)[w_tile]
            owner = torch.tensor([m[2] for m in members], dtype=torch.long)[w_tile]
            key_pos = starts[w_block][:, None] + torch.arange(block)
            key_ok = slots.cpu()[w_block] != source.zero_slot
            kinds = torch.tensor(block_kind)[w_block][:, None]
            visible = key_ok[:, None, :] & (key_pos[:, None, :] <= pos[:, :, None])
            visible &= ((kinds == -1) & (owner >= 0) | (owner == kinds))[:, :, None]
            mask = visible[:, None].expand(-1, groups, size, block).reshape(len(w_tile), groups * size, block)
            _, counts = torch.unique_consecutive(starts[w_block], return_counts=True)
            bounds = torch.cumsum(counts, 0).tolist()
            classes.append(
                _TileClass(
                    size,
                    rows.to(device),
                    w_tile.to(device),
                    w_block.to(device),
                    mask.to(device),
                    list(zip([0, *bounds[:-1]], bounds, strict=True)),
                )
            )
        return slots, classes

    def __call__(
        self, compiled: Any, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float
    ) -> torch.Tensor:
        """Outputs (heads, n_new, dim) of ``query`` (heads, n_new, dim) over ``keys``/``values`` (kv_heads, slots, dim)."""
        if isinstance(compiled, _RowBlocks):
            return self._decode(compiled, query, keys, values, scaling)
        slots, classes = compiled
        heads, n_new, dim = query.shape
        kv_heads = keys.shape[0]
        groups = heads // kv_heads
        wide = torch.float32
        queries = torch.cat([query.to(wide), query.new_zeros((heads, 1, dim), dtype=wide)], dim=1)
        queries = queries.view(kv_heads, groups, n_new + 1, dim)
        out = torch.empty_like(queries)
        for c in classes:
            items, tiles, rows = len(c.w_tile), len(c.rows), groups * c.size
            q = queries[:, :, c.rows[c.w_tile].flatten()].view(kv_heads, groups, items, c.size, dim)
            q = q.transpose(1, 2).reshape(kv_heads, items, rows, dim)
            taken = slots[c.w_block].flatten()
            k = keys.index_select(1, taken).to(wide).view(kv_heads, items, KEY_BLOCK, dim)
            v = values.index_select(1, taken).to(wide).view(kv_heads, items, KEY_BLOCK, dim)
            scores = torch.matmul(q, k.transpose(-1, -2))  # (kv_heads, items, rows, block)
            scores.mul_(scaling).masked_fill_(~c.mask, float("-inf"))
            peaks = scores.amax(-1)
            top = peaks.new_full((kv_heads, tiles, rows), float("-inf"))
            top.scatter_reduce_(1, c.w_tile[None, :, None].expand_as(peaks), peaks, "amax")
            top.masked_fill_(top == float("-inf"), 0.0)  # padding rows see nothing
            weights = torch.exp(scores - top[:, c.w_tile, :, None])
            sums = weights.sum(-1)
            mixed = torch.matmul(weights, v)  # (kv_heads, items, rows, dim)
            acc = mixed.new_zeros((kv_heads, tiles, rows, dim))
            total = sums.new_zeros((kv_heads, tiles, rows))
            for lo, hi in c.slices:  # block after block, in position order
                acc.index_add_(1, c.w_tile[lo:hi], mixed[:, lo:hi])
                total.index_add_(1, c.w_tile[lo:hi], sums[:, lo:hi])
            result = (acc / total[..., None]).view(kv_heads, tiles, groups, c.size, dim).transpose(1, 2)
            out[:, :, c.rows.flatten()] = result.reshape(kv_heads, groups, tiles * c.size, dim)
        return out.view(heads, n_new + 1, dim)[:, :n_new].to(query.dtype)

    def _decode(
        self, layout: _RowBlocks, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float
    ) -> torch.Tensor:
        """The general arithmetic's products, softmax and block order, on every row's blocks in place.

        Each (row, block) pair is one product of the smallest verified tile (``groups × size`` rows, the
        row's query first and zero queries after it), exactly as :meth:`__call__` computes a one-query tile,
        so a token gets the same bits as in a prefill pass. Blocks past a row's position are masked
        entirely and add exact zeros."""
        heads, n_new, dim = query.shape
        kv_heads = keys.shape[0]
        groups, size = heads // kv_heads, self.query_tiles[-1]
        total, blocks, rows = layout.total_rows, layout.blocks, groups * size
        wide = torch.float32
        q = query.new_zeros((kv_heads, total, groups, size, dim), dtype=wide)
        q.select(3, 0).index_copy_(1, layout.rows, query.to(wide).reshape(kv_heads, groups, n_new, dim).transpose(1, 2))
        q = q.view(kv_heads, total, 1, rows, dim).expand(-1, -1, blocks, -1, -1).reshape(-1, total * blocks, rows, dim)
        k = keys.to(wide).view(kv_heads, total * blocks, KEY_BLOCK, dim)
        v = values.to(wide).view(kv_heads, total * blocks, KEY_BLOCK, dim)
        scores = torch.matmul(q, k.transpose(-1, -2))  # (kv_heads, rows × blocks, tile rows, block)
        scores.mul_(scaling).masked_fill_(~layout.mask, float("-inf"))
        top = scores.amax(-1).view(kv_heads, total, blocks, rows).amax(2)
        top.masked_fill_(top == float("-inf"), 0.0)
        weights = torch.exp(scores.view(kv_heads, total, blocks, rows, KEY_BLOCK) - top[:, :, None, :, None])
        sums = weights.sum(-1)
        mixed = torch.matmul(weights.view(kv_heads, total * blocks, rows, KEY_BLOCK), v)
        mixed = mixed.view(kv_heads, total, blocks, rows, dim)
        acc = mixed.new_zeros((kv_heads, total, rows, dim))
        sum_ = sums.new_zeros((kv_heads, total, rows))
        for b in range(blocks):  # block after block, in position order
            acc += mixed[:, :, b]
            sum_ += sums[:, :, b]
        result = (acc / sum_[..., None]).view(kv_heads, total, groups, size, dim).select(3, 0)
        result = result.index_select(1, layout.rows)  # (kv_heads, n_new, groups, dim)
        return result.permute(0, 2, 1, 3).reshape(heads, n_new, dim).to(query.dtype)


def _row_blocks(source: DenseKV, device: torch.device) -> _RowBlocks:
    """Which buffer row each new token of a decoding step reads, and the keys its query sees."""
    width = source.width
    total = source.buffer.shape[3] // width  # every row of the buffer, its zero row included
    blocks = width // KEY_BLOCK
    rows = source.new_slots // width
    position = torch.zeros(total, dtype=torch.long)  # rows without a query see their first key (no NaN)
    position[rows] = source.new_slots % width
    mask = torch.arange(width)[None] <= position[:, None]
    return _RowBlocks(rows.to(device), mask.view(total * blocks, 1, KEY_BLOCK).to(device), total, blocks)


def verified_query_tiles(groups: int, kv_heads: int, head_dim: int, device: torch.device) -> tuple[int, ...]:
    """The tile sizes of :data:`QUERY_TILES` whose two products give every row the same bits (see
    :func:`workers.hf.invariant.consistent_row_counts`), for this model's head shape and this machine."""
    generator = torch.Generator(device=device).manual_seed(0)
    rows = [groups * t for t in QUERY_TILES]

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device)

    keys, values = randn(kv_heads, 3, KEY_BLOCK, head_dim), randn(kv_heads, 3, KEY_BLOCK, head_dim)

    def batched(other: torch.Tensor) -> Any:  # the call pattern of ExactAttention: (kv_heads, items, rows, ·)
        return lambda x: torch.matmul(x.expand(kv_heads, 3, *x.shape).contiguous(), other)[-1, 1]

    with torch.inference_mode():
        scores = consistent_row_counts(batched(keys.transpose(-1, -2)), randn(rows[0], head_dim), rows)
        mixes = consistent_row_counts(batched(values), torch.rand((rows[0], KEY_BLOCK), generator=generator), rows)
    return tuple(t for t, r in zip(QUERY_TILES, rows, strict=True) if r in scores and r in mixes)
