"""The hf engine's prefix cache: a radix tree from token ids to their keys and values, bounded in bytes.

Each node holds an edge of token ids and the keys and values those tokens produced, as one tensor of
shape (layers, 2, kv_heads, tokens, head_dim) in the model's dtype on its device; a path from the root
spells a cached token sequence. :meth:`PrefixCache.match` returns the longest cached prefix of a
sequence (it may end inside an edge) as chunks of node tensors; :meth:`PrefixCache.insert` adds what is
missing, splitting an edge where a new sequence leaves it. A token's keys and values depend only on the
tokens before it, so any two sequences that share a prefix share its entries.

The tree never holds more than ``budget_bytes`` of tensors: before a new edge is added, least-recently-used
leaves are evicted until it fits (one that cannot fit, even alone, is not added). Evicting never breaks a
caller: tensors a forward pass has taken from the tree stay alive until the pass is done, and a prefix
evicted between two rounds is simply computed again (with the same bits, see :mod:`workers.hf.invariant`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence

import torch

Chunk = tuple[torch.Tensor, int]
"""A node's tensor and how many of its first tokens a match uses."""


class _Node:
    __slots__ = ("children", "kv", "last_used", "parent", "tokens")

    def __init__(self, tokens: tuple[int, ...], kv: torch.Tensor | None, parent: _Node | None) -> None:
        self.tokens = tokens
        self.kv = kv
        self.parent = parent
        self.children: dict[int, _Node] = {}
        self.last_used = 0

    @property
    def nbytes(self) -> int:
        return 0 if self.kv is None else self.kv.numel() * self.kv.element_size()


def _common(edge: tuple[int, ...], tokens: Sequence[int], at: int) -> int:
    """How many of ``edge``'s tokens ``tokens[at:]`` starts with."""
    if tuple(tokens[at : at + len(edge)]) == edge:
        return len(edge)
    n = 0
    for a, b in zip(edge, tokens[at:], strict=False):
        if a != b:
            break
        n += 1
    return n


class PrefixCache:
    """A byte-bounded radix tree of token ids → keys and values (see the module docstring)."""

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError(f"the prefix cache budget must be >= 0 bytes, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._root = _Node((), None, None)
        self._clock = itertools.count(1)
        self.bytes = 0
        self.peak_bytes = 0
        self.nodes = 0
        self.evictions = 0
        """Nodes evicted so far."""
        self.evicted_tokens = 0

    def match(self, tokens: Sequence[int]) -> tuple[int, list[Chunk]]:
        """The length of the longest cached prefix of ``tokens`` and its chunks, in order (marks them used)."""
        tick = next(self._clock)
        node, at, chunks = self._root, 0, []
        while at < len(tokens):
            child = node.children.get(tokens[at])
            if child is None:
                break
            used = _common(child.tokens, tokens, at)
            child.last_used = tick
            assert child.kv is not None
            chunks.append((child.kv, used))
            at += used
            if used < len(child.tokens):
                break
            node = child
        return at, chunks

    def insert(self, tokens: Sequence[int], kv_at: Callable[[int, int], torch.Tensor]) -> int:
        """Cache ``tokens``; ``kv_at(begin, end)`` gives the keys and values of ``tokens[begin:end]``.

        Returns how many tokens were added (0 when all were cached, or when the new edge alone exceeds
        the budget).
        """
        tick = next(self._clock)
        node, at = self._root, 0
        while at < len(tokens):
            child = node.children.get(tokens[at])
            if child is None:
                kv = kv_at(at, len(tokens))
                if not self._make_room(kv.numel() * kv.element_size(), tick):
                    return 0
                leaf = _Node(tuple(tokens[at:]), kv.clone(memory_format=torch.contiguous_format), node)
                leaf.last_used = tick
                node.children[leaf.tokens[0]] = leaf
                self.nodes += 1
                self.bytes += leaf.nbytes
                self.peak_bytes = max(self.peak_bytes, self.bytes)
                return len(leaf.tokens)
            used = _common(child.tokens, tokens, at)
            child.last_used = tick
            if used < len(child.tokens):
                if at + used == len(tokens):  # the sequence ends inside this edge: all of it is cached
                    return 0
                self._split(child, used)
            node, at = child, at + used
        return 0

    def _split(self, node: _Node, at: int) -> None:
        """Cut ``node``'s edge after ``at`` tokens; the rest becomes its only child."""
        assert node.kv is not None
        lower = _Node(node.tokens[at:], node.kv[:, :, :, at:].clone(), node)
        lower.children, lower.last_used = node.children, node.last_used
        for child in lower.children.values():
            child.parent = lower
        node.tokens, node.kv = node.tokens[:at], node.kv[:, :, :, :at].clone()
        node.children = {lower.tokens[0]: lower}
        self.nodes += 1

    def _make_room(self, size: int, tick: int) -> bool:
        """Evict least-recently-used leaves, except the path being inserted (used at ``tick``), until ``size``
        more bytes fit the budget; False when they cannot."""
        if size > self.budget_bytes:
            return False
        if self.bytes + size <= self.budget_bytes:
            return True
        leaves = [(n.last_used, id(n), n) for n in self._walk() if not n.children and n.last_used != tick]
        heapq.heapify(leaves)
        while self.bytes + size > self.budget_bytes and leaves:
            _, _, leaf = heapq.heappop(leaves)
            parent = leaf.parent
            assert parent is not None
            del parent.children[leaf.tokens[0]]
            self.bytes -= leaf.nbytes
            self.nodes -= 1
            self.evictions += 1
            self.evicted_tokens += len(leaf.tokens)
            if parent is not self._root and not parent.children and parent.last_used != tick:
                heapq.heappush(leaves, (parent.last_used, id(parent), parent))
        return self.bytes + size <= self.budget_bytes

    def _walk(self) -> list[_Node]:
        nodes, stack = [], list(self._root.children.values())
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(node.children.values())
        return nodes

    def clear(self) -> None:
        """Drop every entry."""
        self._root.children.clear()
        self.bytes = self.nodes = 0
