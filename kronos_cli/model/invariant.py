"""Batch-invariant products with a weight: a row's result never depends on which rows share its batch.

A CPU BLAS picks its kernel and its split of the work over threads from a product's shape, so the same row
comes out with other last bits at other row counts. Measured with MKL on this project's 2-core machine
(tests/model/test_invariant.py; `MKL_ENABLE_INSTRUCTIONS=AVX2` shows an AVX2 server's code path): with AVX-512
any count below 16 rows differs, and with two threads 90 rows differ from 1,440; with AVX2 the pattern follows
the row count modulo the kernel's block (19-21, 25-27, ... rows) and a row's place among them. A server that
batches requests as they arrive would answer a seeded request differently under load. So every product with a
weight is made of products of one fixed shape, each run on one thread (a batched call of at least two items):
- a window (B, T, in) is one product per series (or path) of its own T rows, the shape it has alone;
- the rows of a one-token step (rows, in) are tiles of `TILE` rows (zeros filling the last) times column
  blocks of the weight (`RowBlockLinear`); a tile of 16 gives a row the same bits wherever it stands in it.
Both were checked on the AVX-512, AVX2 and SSE4.2 code paths with 1, 2 and 4 threads.

This holds on the CPU in float32 for a given thread count. CUDA kernels, bf16/fp16 autocast and int8 weights
keep their own kernels: there a row can differ in the last bits with the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

TILE = 16  # rows per product in one-token steps: a tile of 16 gives a row the same bits at any position in it


def per_item(x: Tensor, weight_t: Tensor, bias: Tensor | None) -> Tensor:
    """x (items, M, in) times one weight (in, out) -> (items, M, out), each item one product of its own M rows in
    one batched call: torch runs each item on one thread, so its result depends only on its own shape (a lone
    item is paired with a zero one, so that it too runs on one thread)."""
    n = x.shape[0]
    if n == 1:
        x = torch.cat([x, torch.zeros_like(x)])
    w = weight_t.expand(x.shape[0], *weight_t.shape)  # stride 0 over the items: the weight is not copied
    return _products(x, w, None if bias is None else bias.expand(x.shape[0], 1, -1))[:n]


def block_count(threads: int, sizes: list[int]) -> int:
    """Column blocks of a one-token step's weights: one per thread (at least 2), the most that divide every
    output size; 2 if none does (the weight is padded then)."""
    for parts in range(max(threads, 2), 1, -1):
        if all(n % parts == 0 for n in sizes):
            return parts
    return 2


class RowBlockLinear:
    """`F.linear(x, weight, bias)` for the rows x (rows, in) of a one-token step, as products of one shape: a
    tile of TILE rows times a block of out/parts columns, each on one thread. A row's bits then do not depend on
    how many rows share the step or where it stands among them. Up to TILE rows the blocks of one tile spread
    over the threads (one-series decoding reads every weight once); more rows are tiles, block by block."""

    def __init__(self, weight: Tensor, bias: Tensor | None, parts: int, copy: bool = True):
        out = weight.shape[0]
        self.weight, self.bias, self.out, self.parts = weight, bias, out, parts
        self._plain = _plain_weight(weight)  # the weight's half of `_eligible`, once: a step calls this tens of times
        pad = -out % parts
        if pad:  # an output size no block count divides: zero rows added, their outputs dropped
            weight = torch.cat([weight, weight.new_zeros(pad, weight.shape[1])])
            bias = None if bias is None else torch.cat([bias, bias.new_zeros(pad)])
        blocks = weight.view(parts, -1, weight.shape[1]).transpose(1, 2)  # (parts, in, out/parts)
        # A copy in the products' own layout: a 16-row product reads it about a quarter faster than the view.
        self.blocks = blocks.contiguous() if copy else blocks
        self.bias_blocks = None if bias is None else bias.view(parts, 1, -1)  # (parts, 1, out/parts)

    def __call__(self, x: Tensor) -> Tensor:
        if not (self._plain and _plain_input(x)):
            return F.linear(x, self.weight, self.bias)  # CUDA, autocast, other dtypes: their own kernel, one call
        lead = x.shape[:-1]  # (..., in): the rows of every leading index, (B, 1, in) in a one-token step
        if len(lead) != 1:
            x = x.reshape(-1, x.shape[-1])
        rows = x.shape[0]
        n = -(-rows // TILE)
        if n * TILE != rows:
            # zero rows up to whole tiles (not F.pad: its Python wrapper costs more than the op)
            x = torch.constant_pad_nd(x, (0, 0, 0, n * TILE - rows))
        tiles = x.view(n, TILE, -1)
        if n == 1:  # (parts, TILE, out/parts): the blocks are the items; only the given rows are copied out
            y = _products(tiles.expand(self.parts, TILE, -1), self.blocks, self.bias_blocks)
            y = y[:, :rows].transpose(0, 1).reshape(*lead, -1)
        else:  # the tiles are the items, one call per block
            y = torch.cat(
                [
                    _products(tiles, self.blocks[j].expand(n, *self.blocks.shape[1:]), self._bias(j, n))
                    for j in range(self.parts)
                ],
                dim=-1,
            )
            y = y.view(n * TILE, -1)[:rows].view(*lead, -1)
        # the padding columns of an output size no block count divides
        return y if y.shape[-1] == self.out else y[..., : self.out]

    def _bias(self, j: int, n: int) -> Tensor | None:
        return None if self.bias_blocks is None else self.bias_blocks[j].expand(n, 1, -1)


def _products(x: Tensor, w: Tensor, bias: Tensor | None) -> Tensor:
    """x (n, M, in) @ w (n, in, out) (+ bias (n, 1, out)) as one batched call of n >= 2 items."""
    return torch.bmm(x, w) if bias is None else torch.baddbmm(bias, x, w)


def _eligible(x: Tensor, weight: Tensor) -> bool:
    """CPU float32 outside autocast: where this module's guarantee holds (elsewhere the plain kernel runs)."""
    return _plain_input(x) and _plain_weight(weight)


def _plain_input(x: Tensor) -> bool:
    return x.is_cpu and x.dtype == torch.float32 and not _cpu_autocast()


def _plain_weight(weight: Tensor) -> bool:
    return type(weight) in (Tensor, torch.nn.Parameter) and weight.dtype == torch.float32  # not quantised


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`F.linear`, batch-invariant where `_eligible`: x (..., T, in) as one product per leading item (a series'
    window, a path's tail), x (rows, in) in tiles."""
    if not _eligible(x, weight):
        return F.linear(x, weight, bias)
    if x.dim() <= 2:
        lin = RowBlockLinear(weight, bias, block_count(torch.get_num_threads(), [weight.shape[0]]), copy=False)
        return lin(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], weight.shape[0])
    items = x.reshape(-1, *x.shape[-2:])
    return per_item(items, weight.t(), bias).reshape(*x.shape[:-1], weight.shape[0])


class _BatchInvariant(TorchFunctionMode):
    """Routes every `F.linear` (every `nn.Linear`) to `linear`; other ops run unchanged."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            return linear(*args, **kwargs)
        return func(*args, **kwargs)


def batch_invariant() -> TorchFunctionMode:
    """A context in which the modules' linear layers are batch-invariant (this thread only). Its dispatch costs
    a few microseconds per op, so it wraps whole-window passes (prefill, the tokenizer), not one-token steps,
    which use `RowBlockLinear` directly."""
    return _BatchInvariant()
