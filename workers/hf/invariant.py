"""Batch invariance: the same bits for a token whatever it is batched or cached with.

A transformer's operations are row-wise (a token's own vector: embedding, RMSNorm, rotary, SiLU, the
residual adds, the log-softmax over the vocabulary), matrix multiplies (the linear layers, the
vocabulary projection, the two products inside attention) and attention's reductions over keys. The
row-wise ones give a token the same bits wherever it sits, with one exception found on x86 builds of
torch: SiLU and sigmoid finish a vectorised loop with scalar code that rounds differently, so a value
near the end of a tensor's chunk gets other bits than the same value elsewhere. :class:`InvariantSiLU`
computes ``x / (1 + exp(-x))`` from exp, addition and division, whose scalar and vector paths agree.

Matrix multiplies are where batching changes results: BLAS picks its kernel by shape, and kernels for
few rows reduce in another order (MKL here: 1-3 rows, and odd counts up to 9 with two threads, differ
from the rest). So every product runs on **row tiles** whose sizes come from a fixed set, the last tile
padded with zero rows, and at load :func:`consistent_row_counts` checks, on the real operands and with
the engine's threads, that each size gives every row the same bits as the largest position-independent
tile does at any offset. Only the sizes that pass are used; a row's result is then a function of the row
alone. The attention reductions over keys are made invariant the same way (fixed key blocks summed in
position order, see :mod:`workers.hf.attention`).

This is the CPU path (``batch_invariant``, on by default on CPU). GPUs make no bitwise claim: there the
model's own layers run unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

ROW_TILES = (1024, 512, 256, 128, 64, 32, 16)
"""Candidate row counts of the linear layers' tiles, largest first (on a 2-core AVX-512 VM, BLAS ran a
1024-row product of SmolLM2's shapes up to ~1.3x faster per row than a 256-row one; checking the larger
tiles at load costs ~2.7 s)."""
_ALIGN = 64  # bytes: every tile starts on a cache line (MKL's results may depend on alignment)


def tile_plan(rows: int, sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(start, size) tiles covering ``rows`` rows: as many of the largest size as fit, then the tiles that
    cover the rest with the fewest padded rows (then the fewest tiles), the last one padded."""
    largest = sizes[0]
    plan = [(start, largest) for start in range(0, rows - rows % largest, largest)]
    start = len(plan) * largest
    for size in _cover(rows - start, tuple(sizes)):
        plan.append((start, size))
        start += size
    return plan


@functools.lru_cache(maxsize=4096)
def _cover(rows: int, sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Tile sizes (largest first) covering fewer than ``sizes[0]`` rows: least padding, then fewest tiles."""
    if rows <= 0:
        return ()
    best: tuple[int, ...] = ()
    for size in sizes:
        option = (size,) if size >= rows else (size, *_cover(rows - size, sizes))
        if not best or (sum(option), len(option)) < (sum(best), len(best)):
            best = option
    return tuple(sorted(best, reverse=True))


def consistent_row_counts(
    product: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor, sizes: Sequence[int]
) -> tuple[int, ...]:
    """The sizes (largest first) whose products give each row of ``rows`` the same bits.

    ``product`` maps (n, ...) rows to (n, ...) results row by row (a matrix multiply). The reference is the
    largest size that is deterministic and independent of where a row sits in the tile (larger sizes that
    are not are dropped; none: nothing is returned); a smaller size is kept when its tiles at three offsets
    reproduce the reference rows exactly.
    """
    for largest in sizes:
        reference = product(rows[:largest])
        shift = largest // 2 + 1
        rolled = product(torch.roll(rows[:largest], shift, 0))
        if torch.equal(product(rows[:largest]), reference) and torch.equal(torch.roll(rolled, -shift, 0), reference):
            break
    else:
        return ()
    kept = [largest]
    for size in (s for s in sizes if s < largest):
        offsets = {0, (largest - size) // 2, largest - size}
        if all(torch.equal(product(rows[o : o + size]), reference[o : o + size]) for o in offsets):
            kept.append(size)
    return tuple(kept)


def tiled_matmul(x: torch.Tensor, weight: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """``x @ weight.T`` for ``x`` of shape (n, k), computed tile by tile (see :func:`tile_plan`)."""
    rows, inner = x.shape
    if not x.is_contiguous() or x.data_ptr() % _ALIGN:
        x = x.clone(memory_format=torch.contiguous_format)
    out = x.new_empty((rows, weight.shape[0]))
    transposed = weight.t()
    for start, size in tile_plan(rows, sizes):
        if start + size <= rows:
            torch.mm(x[start : start + size], transposed, out=out[start : start + size])
        else:  # the last tile, padded with zero rows
            tile = x.new_zeros((size, inner))
            tile[: rows - start] = x[start:]
            out[start:] = torch.mm(tile, transposed)[: rows - start]
    return out


class RowTiledLinear(nn.Module):
    """An ``nn.Linear`` (sharing its parameters) whose product runs on verified row tiles."""

    def __init__(self, linear: nn.Linear, sizes: Sequence[int]) -> None:
        super().__init__()
        self.weight = linear.weight
        self.bias = linear.bias
        self.sizes = tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = tiled_matmul(x.reshape(-1, x.shape[-1]), self.weight, self.sizes)
        if self.bias is not None:
            out += self.bias
        return out.view(*x.shape[:-1], -1)


class InvariantSiLU(nn.Module):
    """SiLU as ``x / (1 + exp(-x))``: the same bits for a value wherever it sits in a tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / (1 + torch.exp(-x))


def _product(weight: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: x @ weight.t()


def make_batch_invariant(model: Any) -> tuple[int, ...]:
    """Swap the model's linear layers for :class:`RowTiledLinear` and its SiLUs for :class:`InvariantSiLU`.

    Returns the verified tile sizes; an empty tuple means this BLAS gave no consistent size, and the model
    is left unchanged (not batch-invariant).
    """
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    done = {m.sizes for m in model.modules() if isinstance(m, RowTiledLinear)}
    if done and not linears:  # an engine already made this model invariant
        return done.pop()
    sizes: tuple[int, ...] = ROW_TILES
    seen: set[tuple[int, ...]] = set()
    generator = torch.Generator(device=model.device).manual_seed(0)
    with torch.inference_mode():
        for _, linear in linears:
            shape = tuple(linear.weight.shape)
            if shape in seen or not sizes:
                continue
            seen.add(shape)
            rows = torch.randn((ROW_TILES[0], shape[1]), generator=generator, device=model.device).to(
                linear.weight.dtype
            )
            sizes = tuple(s for s in consistent_row_counts(_product(linear.weight), rows, ROW_TILES) if s in sizes)
    if not sizes:
        return ()
    for name, linear in linears:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, RowTiledLinear(linear, sizes))
    for module in model.modules():
        act = getattr(module, "act_fn", None)
        if isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation":
            module.act_fn = InvariantSiLU()
    return sizes
