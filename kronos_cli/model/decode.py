"""The decode step's layout of a model's weights (`DecodeWeights`) and the cache of sample paths that share a
history (`PathsKV`). The step itself is the model's own forward pass (`engine.forward_tokens`): these change only
how its linear maps read their weights, laid out for memory-bound work: every weight read once, few small ops.

A decoding step multiplies each weight matrix by a handful of rows, so its time is the time to read the
weights plus a fixed cost per op. These bring it near the read time (see benchmarks/bench_forecast.py):
- matrices that share an input are concatenated (q|k|v, w1|w3, the dependency layer's k|v): fewer, larger
  products;
- every product is made of products of one shape, a tile of 16 rows times a column block of the weight, each
  on one thread (`invariant.RowBlockLinear`): a row's result does not depend on the other rows of the step
  (what the server's batching needs), and one series' step spreads its blocks over all threads;
- rotary tables are precomputed for every position of the cache, sliced once a step for all blocks;
- q and k are rotated as one tensor, and the forecast's time embeddings are computed once for every step
  (`engine._Rollout.times`): the stamps are known before the first.
Each output element is still one dot product of the same numbers, so only float rounding can differ from the
plain layers (well below 1e-5 on the logits, which tests/model/test_engine.py checks).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor

from kronos_cli.model.invariant import RowBlockLinear, block_count
from kronos_cli.model.layers import LayerKV, RotaryEmbedding
from kronos_cli.model.predictor import Kronos


def joined(linears: list[torch.nn.Linear], parts: int) -> RowBlockLinear:
    """One product for several linear layers of the same input: their weights (and biases) stacked by row."""
    weight = torch.cat([lin.weight for lin in linears]) if len(linears) > 1 else linears[0].weight
    bias = None if linears[0].bias is None else torch.cat([lin.bias for lin in linears])
    return RowBlockLinear(weight, bias, parts)


class PathsKV(LayerKV):
    """A layer's keys and values for B series whose S sample paths share each series' prefilled history.

    The history is stored once per series; each decoding step writes the S paths' new keys side by side after
    it (slot prefix + j*S + s holds path s's j-th token) and masks each path's query to the history and its own
    keys. Attention reads the history once per series instead of once per path, and the cache holds
    B * (L + P*S) positions instead of B*S * (L + P). Rows are series-major (series i owns rows i*S .. i*S+S-1).
    """

    def __init__(self, slot: LayerKV, paths: int):
        super().__init__(slot.k, slot.v)
        self.length = self.prefix = slot.length
        self.paths = paths
        steps = (slot.k.shape[2] - self.prefix) // paths
        history = torch.ones(paths, self.prefix, dtype=torch.bool, device=slot.k.device)
        own = torch.eye(paths, dtype=torch.bool, device=slot.k.device).repeat(1, steps)
        self._mask = torch.cat([history, own], dim=1)  # (S, capacity): what each path's query may see

    @property
    def position(self) -> int:
        return self.prefix + (self.length - self.prefix) // self.paths

    def _by_series(self, x: Tensor) -> Tensor:
        """(B*S, H, 1, hd) -> (B, H, S, hd)."""
        return x.view(x.shape[0] // self.paths, self.paths, x.shape[1], x.shape[-1]).transpose(1, 2)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """One new key and value per row (B*S, H, 1, hd)."""
        end = self.length + self.paths
        self.k[:, :, self.length : end] = self._by_series(k)
        self.v[:, :, self.length : end] = self._by_series(v)
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def attention(self, q: Tensor) -> Tensor:
        n = self.length
        out = F.scaled_dot_product_attention(
            self._by_series(q), self.k[:, :, :n], self.v[:, :, :n], attn_mask=self._mask[:, :n]
        )  # (B, H, S, hd)
        return out.transpose(1, 2).reshape(q.shape[0], 1, -1)  # (B*S, 1, H * hd)


class RotaryTables:
    """cos and signed sin (positions, head_dim) of every position up to the cache's length. Every block of a
    step asks for the same position, so the last slice is kept (as one tuple, so threads sharing the layout never
    see a key with another's slice)."""

    def __init__(self, tables: tuple[Tensor, Tensor]):
        self.cos, self.sin = tables
        self._last: tuple = (None, None)

    def at(self, start: int, length: int) -> tuple[Tensor, Tensor]:
        key, tables = self._last
        if key != (start, length):
            tables = (self.cos[start : start + length], self.sin[start : start + length])
            self._last = ((start, length), tables)
        return tables


class FusedBlock:
    """One transformer block's linear maps for one-token steps, computed from its weights concatenated where
    they share an input (q|k|v, w1|w3), and the rotary tables of every position up to the cache's length: what
    `TransformerBlock.forward` takes as `fused`. Same names and results (to float rounding) as the block's."""

    def __init__(self, block, parts: int, rope: RotaryTables):
        attn, ffn = block.self_attn, block.ffn
        self.heads = attn.n_heads
        self.qkv_w = joined([attn.q_proj, attn.k_proj, attn.v_proj], parts)
        self.out_w = joined([attn.out_proj], parts)
        self.w13, self.w2 = joined([ffn.w1, ffn.w3], parts), joined([ffn.w2], parts)
        self.tables = rope

    def qkv(self, h: Tensor, start: int) -> tuple[Tensor, Tensor, Tensor]:
        """`TransformerBlock.qkv`: one product for q|k|v, and q and k rotated as one tensor (half the ops)."""
        b, t = h.shape[:2]
        qkv = self.qkv_w(h).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, H, T, hd)
        q, k = RotaryEmbedding.rotate(qkv[:2], self.rope(start, t))
        return q, k, qkv[2]

    def out(self, a: Tensor) -> Tensor:
        return self.out_w(a)

    def gate_up(self, h: Tensor) -> tuple[Tensor, ...]:
        return self.w13(h).chunk(2, dim=-1)

    def down(self, z: Tensor) -> Tensor:
        return self.w2(z)

    def rope(self, start: int, length: int) -> tuple[Tensor, Tensor]:
        """`RotaryEmbedding.tables(start, length)`, read from the precomputed ones."""
        return self.tables.at(start, length)


class FusedDep:
    """The dependency layer's linear maps for one-token steps (k|v fused), as `DependencyAwareLayer.next_token`
    and `CrossAttention.project_kv` take them."""

    def __init__(self, attn, parts: int):
        self.kv_w, self.q_w, self.out_w = (
            joined([attn.k_proj, attn.v_proj], parts),
            joined([attn.q_proj], parts),
            joined([attn.out_proj], parts),
        )

    def kv(self, hidden: Tensor) -> tuple[Tensor, ...]:
        return self.kv_w(hidden).chunk(2, dim=-1)

    def q(self, x: Tensor) -> Tensor:
        return self.q_w(x)

    def out(self, a: Tensor) -> Tensor:
        return self.out_w(a)


class DecodeWeights:
    """Every weight a one-token step reads, laid out for it (see the module docstring).

    `DecodeWeights.of(model, max_len)` reuses the layout of the previous call for the same model while its
    parameters are unchanged (the same storage and version counters: an optimiser step or a loaded state dict
    makes a new one); building it copies the concatenated matrices, tens of ms for Kronos-small, which a server
    would otherwise pay per batch. The copies live as long as the model (about a quarter of its weights)."""

    _layouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, model: Kronos, max_len: int) -> DecodeWeights:
        # Storage address and torch's private in-place version counter of every weight: an optimiser step bumps the
        # version, a loaded state dict moves the storage; without the key a stale layout would forecast with old
        # weights, and without the cache a server would copy the matrices for every batch.
        key = (torch.get_num_threads(), tuple((p.data_ptr(), p._version) for p in model.parameters()))
        known = cls._layouts.get(model)
        if known is not None and known[0] == key and known[1] >= max_len:  # longer rotary tables serve too
            return known[2]
        weights = cls(model, max_len)
        cls._layouts[model] = (key, max_len, weights)
        return weights

    def __init__(self, model: Kronos, max_len: int):
        c = model.config
        parts = block_count(torch.get_num_threads(), [c.d_model, c.ff_dim, 2**c.s1_bits, 2**c.s2_bits])
        dtype = model.transformer[0].self_attn.q_proj.weight.dtype
        first = model.transformer[0].self_attn.rotary
        shared = RotaryTables(first.tables(0, max_len, dtype))  # every released model: one table for all blocks
        self.blocks = []
        for block in model.transformer:
            rotary = block.self_attn.rotary
            own = shared if torch.equal(rotary.inv_freq, first.inv_freq) else None
            self.blocks.append(FusedBlock(block, parts, own or RotaryTables(rotary.tables(0, max_len, dtype))))
        self.fusion = joined([model.embedding.fusion_proj], parts)
        self.dep = FusedDep(model.dep_layer.cross_attn, parts)
        self.head_s1, self.head_s2 = joined([model.head.proj_s1], parts), joined([model.head.proj_s2], parts)
