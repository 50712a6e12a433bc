"""The radix tree of the hf engine's prefix cache and the planning of shared prefixes, on tiny tensors.

A token's "keys and values" here are a (layers=2, 2, kv_heads=1, 1, head_dim=1) block filled with the token id, 16 bytes per
token, so what a match returns can be checked against the tokens it claims to cover.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from workers.hf.forward import kv_slice, plan_shared
from workers.hf.prefix_cache import PrefixCache

BYTES_PER_TOKEN = 16


def kv(tokens: Sequence[int]) -> torch.Tensor:
    return torch.tensor(tokens, dtype=torch.float32)[None, None, None, :, None].expand(2, 2, 1, -1, 1).contiguous()


def insert(cache: PrefixCache, tokens: Sequence[int]) -> int:
    return cache.insert(tokens, lambda begin, end: kv(tokens[begin:end]))


def covered(chunks: list[tuple[torch.Tensor, int]]) -> list[int]:
    """The token ids the chunks of a match spell (read back from their tensors)."""
    return [int(v) for tensor, used in chunks for v in tensor[0, 0, 0, :used, 0].tolist()]


def test_match_returns_the_longest_cached_prefix_and_splits_edges_where_sequences_part() -> None:
    cache = PrefixCache(10_000)
    assert cache.match([1, 2, 3]) == (0, [])
    assert insert(cache, [1, 2, 3, 4, 5]) == 5
    length, chunks = cache.match([1, 2, 3, 9])
    assert length == 3
    assert covered(chunks) == [1, 2, 3]
    assert insert(cache, [1, 2, 3, 9, 9]) == 2  # splits [1..5] after 3
    assert cache.nodes == 3
    assert cache.bytes == 7 * BYTES_PER_TOKEN
    for sequence in ([1, 2, 3, 4, 5], [1, 2, 3, 9, 9]):
        length, chunks = cache.match([*sequence, 7])
        assert length == 5
        assert covered(chunks) == sequence
    assert insert(cache, [1, 2, 3, 4]) == 0  # already there (ends inside an edge)
    assert insert(cache, [1, 2]) == 0
    assert cache.match([2, 1]) == (0, [])


def test_least_recently_used_leaves_go_first_and_the_budget_is_never_exceeded() -> None:
    cache = PrefixCache(12 * BYTES_PER_TOKEN)
    insert(cache, [1, 1, 1, 1])  # a shared trunk [1, 1] once the next two arrive
    insert(cache, [1, 1, 2, 2])
    insert(cache, [1, 1, 3, 3])
    assert cache.bytes == 8 * BYTES_PER_TOKEN
    cache.match([1, 1, 1, 1])  # now [1,1,2,2]'s leaf is the least recently used
    held = cache.match([1, 1, 3, 3])[1]
    insert(cache, [5, 5, 5, 5, 5, 5])
    assert cache.peak_bytes <= cache.budget_bytes
    assert cache.bytes == 12 * BYTES_PER_TOKEN
    assert cache.evictions >= 1
    assert cache.match([1, 1, 2, 2])[0] == 2
    assert cache.match([1, 1, 1, 1])[0] == 4
    assert covered(held) == [1, 1, 3, 3]  # tensors taken from the tree stay valid whatever happens to it
    assert insert(cache, list(range(20))) == 0  # larger than the whole budget: not cached
    assert cache.bytes <= cache.budget_bytes
    cache.clear()
    assert (cache.bytes, cache.nodes, cache.match([1])) == (0, 0, (0, []))


def test_a_zero_budget_caches_nothing() -> None:
    cache = PrefixCache(0)
    assert insert(cache, [1, 2]) == 0
    assert cache.match([1, 2]) == (0, [])
    with pytest.raises(ValueError, match=">= 0 bytes"):
        PrefixCache(-1)


def test_shared_prefixes_are_planned_shortest_first_with_their_first_owner() -> None:
    system = tuple(range(100, 120))  # 20 tokens every sequence starts with
    a = (*system, 1, *range(200, 220), 7)
    b = (*system, 1, *range(200, 220), 8)  # shares 41 tokens with a
    c = (*system, 2, 3)
    rounds = plan_shared({a: 2, b: 0, c: 1}, minimum=16)
    assert rounds == [{system: 0}, {a[:41]: 0, system: 1}]
    assert plan_shared({a: 0, c: 1}, minimum=32) == []  # they share 20 tokens only
    assert plan_shared({a: 0}) == []


def test_kv_slice_reads_across_chunks() -> None:
    parts = [(kv([1, 2, 3, 99]), 3), (kv([4, 5]), 2)]
    assert covered([(kv_slice(parts, 1, 5), 4)]) == [2, 3, 4, 5]
    assert covered([(kv_slice(parts, 3, 4), 1)]) == [4]
