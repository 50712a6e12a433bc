"""The batch-invariant building blocks of the hf engine on random tensors (no model): row tiles, SiLU, and
the exact attention over segments with cached prefixes and branches, against a plain float64 attention."""

from __future__ import annotations

from typing import Any

import torch

from workers.hf.attention import DenseAttention
from workers.hf.exact import KEY_BLOCK, QUERY_TILES, ExactAttention, verified_query_tiles
from workers.hf.invariant import ROW_TILES, InvariantSiLU, consistent_row_counts, tile_plan, tiled_matmul
from workers.hf.passes import CachedKV, DenseKV, Segment

KV_HEADS, GROUPS, DIM = 2, 3, 16


def test_tile_plan_covers_the_rows_largest_tiles_first() -> None:
    assert tile_plan(2100, ROW_TILES) == [(0, 1024), (1024, 1024), (2048, 64)]  # 12 padded rows
    assert tile_plan(600, ROW_TILES) == [(0, 512), (512, 64), (576, 32)]  # 8 padded rows
    assert tile_plan(600, (256, 128, 64, 32, 16)) == [(0, 256), (256, 256), (512, 64), (576, 32)]
    assert tile_plan(27, ROW_TILES) == [(0, 32)]  # not 16 + 8 + 16
    assert tile_plan(3, ROW_TILES) == [(0, 16)]
    assert tile_plan(0, ROW_TILES) == []


def test_consistent_row_counts_drops_a_size_whose_rows_change() -> None:
    weight = torch.randn(24, 8)
    rows = torch.randn(256, 8)
    assert consistent_row_counts(lambda x: x @ weight.t(), rows, (256, 64, 16)) == (256, 64, 16)

    def odd_for_16(x: torch.Tensor) -> torch.Tensor:  # a "kernel" that rounds differently for 16 rows
        return x @ weight.t() + (1e-6 if len(x) == 16 else 0.0)

    assert consistent_row_counts(odd_for_16, rows, (256, 64, 16)) == (256, 64)

    def odd_for_256(x: torch.Tensor) -> torch.Tensor:  # the largest size is not position-independent
        return x @ weight.t() + (torch.arange(len(x))[:, None] * 1e-6 if len(x) == 256 else 0.0)

    assert consistent_row_counts(odd_for_256, rows, (256, 64, 16)) == (64, 16)  # the next size is the reference
    assert consistent_row_counts(lambda x: x + torch.arange(len(x))[:, None], rows, (256, 64)) == ()


def test_a_row_of_a_tiled_product_does_not_depend_on_its_batch() -> None:
    weight, x = torch.randn(96, 64), torch.randn(300, 64)
    whole = tiled_matmul(x, weight, ROW_TILES)
    for start, count in ((0, 1), (37, 3), (250, 20), (299, 1)):
        assert torch.equal(tiled_matmul(x[start : start + count], weight, ROW_TILES), whole[start : start + count])


def test_silu_gives_a_value_the_same_bits_at_any_offset() -> None:
    values = (torch.rand(4000) * 8 - 4).repeat_interleave(35).view(4000, 35)  # 35: vector body and scalar tail
    out = torch.stack([InvariantSiLU()(row) for row in values])
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert torch.allclose(out[:, 0], torch.nn.functional.silu(values[:, 0]), atol=1e-6)


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Plain attention in float64: q (heads, n, dim), k/v (kv_heads, m, dim), visible (n, m)."""
    k, v = (x.double().repeat_interleave(GROUPS, dim=0) for x in (k, v))
    scores = (q.double() @ k.transpose(-1, -2)) * DIM**-0.5
    return torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1) @ v


def run(
    backend: Any,
    segments: list[Segment],
    chunks: list[torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layer: int = 0,
) -> torch.Tensor:
    source = CachedKV(q.shape[1], chunks)
    start = 0
    for segment in segments:
        segment.start = start
        start += segment.new_tokens
    keys, values = source.keys_values(layer, k, v)
    compiled = backend.compile(segments, source, GROUPS, torch.device("cpu"))
    result: torch.Tensor = backend(compiled, q, keys, values, DIM**-0.5)
    return result


def test_exact_attention_is_a_function_of_a_tokens_own_keys() -> None:
    torch.manual_seed(0)
    layers = 1
    cached = torch.randn(layers, 2, KV_HEADS, 150, DIM)  # a cached prefix of 150 tokens (3 key blocks)
    trunk, branches = 20, [[1, 2, 3], [4], [5, 6]]
    n = trunk + sum(len(b) for b in branches)
    q, k, v = torch.randn(KV_HEADS * GROUPS, n, DIM), torch.randn(KV_HEADS, n, DIM), torch.randn(KV_HEADS, n, DIM)

    def segment() -> Segment:
        return Segment(torch.arange(150) + n, list(range(trunk)), branches)  # cached slots follow the new ones

    together = run(
        ExactAttention(verified_query_tiles(GROUPS, KV_HEADS, DIM, torch.device("cpu"))), [segment()], [cached], q, k, v
    )
    # what each token may see: the prefix, the trunk up to itself, its own branch up to itself
    owner = torch.tensor([0] * trunk + [k_ for k_, b in enumerate(branches, 1) for _ in b])
    position = torch.cat(
        [torch.arange(150, 150 + trunk), *[torch.arange(150 + trunk, 150 + trunk + len(b)) for b in branches]]
    )
    visible = torch.cat(
        [
            torch.ones(n, 150, dtype=torch.bool),
            (position[None] <= position[:, None]) & ((owner[None] == 0) | (owner[None] == owner[:, None])),
        ],
        dim=1,
    )
    keys = torch.cat([cached[0, 0], k], dim=1)
    values = torch.cat([cached[0, 1], v], dim=1)
    assert torch.allclose(together.double(), reference(q, keys, values, visible), atol=1e-5)

    # The same tokens after another segment, in other tile sizes: the same bits.
    other = 7
    q2, k2, v2 = (torch.cat([torch.randn(x.shape[0], other, DIM), x], dim=1) for x in (q, k, v))
    first = Segment(torch.zeros(0, dtype=torch.long), list(range(other)))
    mine = Segment(torch.arange(150) + n + other, list(range(trunk)), branches)
    verified = verified_query_tiles(GROUPS, KV_HEADS, DIM, torch.device("cpu"))
    assert verified[0] == QUERY_TILES[0]
    for tiles in (verified, verified[-2:], verified[:1]):  # any of the sizes this machine gives the same bits
        shifted = run(ExactAttention(tiles), [first, mine], [cached], q2, k2, v2)
        assert torch.equal(shifted[:, other:], together), tiles
    # A branch's tokens alone after the whole trunk cached (as when the context came from the prefix cache).
    trunk_kv = torch.cat([cached, torch.stack([k[:, :trunk], v[:, :trunk]])[None]], dim=3)
    start, last = trunk + len(branches[0]) + len(branches[1]), branches[2]
    cached_trunk = Segment(torch.arange(150 + trunk) + len(last), [], [last])
    alone = run(ExactAttention(verified), [cached_trunk], [trunk_kv], q[:, start:], k[:, start:], v[:, start:])
    assert torch.equal(alone, together[:, start:])
    dense = run(DenseAttention(), [segment()], [cached], q, k, v)
    assert torch.allclose(dense, together, atol=1e-5)


def test_a_decoding_step_reads_rows_in_place_with_the_bits_of_a_prefill_pass() -> None:
    """Decoding over a buffer of rows (whole key blocks) gives a token the bits it gets in a general pass."""
    torch.manual_seed(1)
    width, rows = 3 * KEY_BLOCK, 3  # each row three blocks; the buffer's last row is the zero row
    lengths = {0: 150, 2: 64}  # the tokens each decoding row holds; row 1 finished (no query this step)
    buffer = torch.zeros(1, 2, KV_HEADS, (rows + 1) * width, DIM)
    for row, length in lengths.items():
        buffer[0, :, :, row * width : row * width + length] = torch.randn(2, KV_HEADS, length, DIM)
    buffer[0, :, :, width : width + 50] = torch.randn(2, KV_HEADS, 50, DIM)  # the finished row's keys
    q, k, v = torch.randn(KV_HEADS * GROUPS, 2, DIM), torch.randn(KV_HEADS, 2, DIM), torch.randn(KV_HEADS, 2, DIM)
    backend = ExactAttention(verified_query_tiles(GROUPS, KV_HEADS, DIM, torch.device("cpu")))

    slots = torch.tensor([row * width + length for row, length in lengths.items()])
    source = DenseKV(buffer, slots, width)
    segments = [Segment(torch.arange(row * width, row * width + n), [0]) for row, n in lengths.items()]
    for i, segment in enumerate(segments):
        segment.start = i
    keys, values = source.keys_values(0, k, v)
    decoded = backend(backend.compile(segments, source, GROUPS, torch.device("cpu")), q, keys, values, DIM**-0.5)

    for i, (row, n) in enumerate(lengths.items()):  # the same token, computed in a general pass
        own_k, own_v = buffer[0, 0, :, row * width : row * width + n], buffer[0, 1, :, row * width : row * width + n]
        cached = torch.stack([own_k[:, : n - 4], own_v[:, : n - 4]])[None]  # all but its last four keys cached
        q5 = torch.cat([torch.randn(KV_HEADS * GROUPS, 4, DIM), q[:, i : i + 1]], dim=1)
        k5, v5 = (
            torch.cat([own_k[:, n - 4 :], k[:, i : i + 1]], dim=1),
            torch.cat([own_v[:, n - 4 :], v[:, i : i + 1]], dim=1),
        )
        general = run(backend, [Segment(torch.arange(n - 4) + 5, list(range(5)))], [cached], q5, k5, v5)
        assert torch.equal(decoded[:, i], general[:, 4]), row
        everything = torch.ones(1, n + 1, dtype=torch.bool)
        expected = reference(
            q[:, i : i + 1], torch.cat([own_k, k[:, i : i + 1]], 1), torch.cat([own_v, v[:, i : i + 1]], 1), everything
        )
        assert torch.allclose(decoded[:, i : i + 1].double(), expected, atol=1e-5)
