"""One-token decoding steps laid out for memory-bound work: every weight read once per step, few small ops.

A decoding step multiplies each weight matrix by a handful of rows, so its time is the time to read the
weights plus a fixed cost per op. These bring it near the read time (see benchmarks/bench_forecast.py):
- matrices that share an input are concatenated (q|k|v, w1|w3, the dependency layer's k|v): fewer, larger
  products;
- every product is made of products of one shape, a tile of 16 rows times a column block of the weight, each
  on one thread (`invariant.RowBlockLinear`): a row's result does not depend on the other rows of the step
  (what the server's batching needs), and one series' step spreads its blocks over all threads;
- rotary tables are precomputed, q and k are rotated together, and the fp32 RMSNorm skips its dtype round trip.
Each output element is still one dot product of the same numbers, so only float rounding can differ from the
plain layers (well below 1e-5 on the logits, which tests/model/test_engine.py checks).
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor

from kronos_cli.model.invariant import RowBlockLinear, block_count
from kronos_cli.model.layers import LayerKV, RMSNorm
from kronos_cli.model.predictor import Kronos


def joined(linears: list[torch.nn.Linear], parts: int) -> RowBlockLinear:
    """One product for several linear layers of the same input: their weights (and biases) stacked by row."""
    weight = torch.cat([lin.weight for lin in linears]) if len(linears) > 1 else linears[0].weight
    bias = None if linears[0].bias is None else torch.cat([lin.bias for lin in linears])
    return RowBlockLinear(weight, bias, parts)


def _rms(norm: RMSNorm, x: Tensor) -> Tensor:
    """RMSNorm of fp32 rows in one op (the same arithmetic as the module, tests/model/test_engine.py checks it);
    other dtypes through the module."""
    if x.dtype != torch.float32:
        return norm(x)
    return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.eps)  # bit for bit the module's fp32 arithmetic


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
        return out.transpose(1, 2).reshape(q.shape[0], -1)


class _Block:
    """One transformer block's weights for a one-token step."""

    def __init__(self, block, parts: int):
        attn, ffn = block.self_attn, block.ffn
        self.norm1, self.norm2, self.heads = block.norm1, block.norm2, attn.n_heads
        self.qkv = joined([attn.q_proj, attn.k_proj, attn.v_proj], parts)
        self.out = joined([attn.out_proj], parts)
        self.w13 = joined([ffn.w1, ffn.w3], parts)
        self.w2 = joined([ffn.w2], parts)


class _Rope:
    """cos and signed sin tables (positions, head_dim) of one rotary embedding: x*cos + swap_halves(x)*sin."""

    def __init__(self, inv_freq: Tensor, max_len: int, dtype: torch.dtype):
        freqs = torch.outer(torch.arange(max_len, device=inv_freq.device).type_as(inv_freq), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        half = inv_freq.shape[0]
        sin = emb.sin()
        sin[:, :half] = -sin[:, :half]  # rotate_half(x) = (-x2, x1) = swap_halves(x) * (-1, +1)
        self.cos, self.sin = emb.cos().to(dtype), sin.to(dtype)

    def at(self, pos: int) -> tuple[Tensor, Tensor]:
        return self.cos[pos], self.sin[pos]

    @staticmethod
    def rotate(x: Tensor, cos_sin: tuple[Tensor, Tensor]) -> Tensor:
        """Rotate x (..., head_dim) by one position's tables: -x2*sin equals x2*(-sin) exactly."""
        swapped = torch.roll(x, x.shape[-1] // 2, dims=-1)  # (x2, x1)
        return (x * cos_sin[0]).addcmul_(swapped, cos_sin[1])


class DecodeWeights:
    """Every weight a one-token step reads, laid out for it (see the module docstring).

    `DecodeWeights.of(model, max_len)` reuses the layout of the previous call for the same model while its
    parameters are unchanged (the same storage and version counters: an optimiser step or a loaded state dict
    makes a new one); building it copies the concatenated matrices, tens of ms for Kronos-small, which a server
    would otherwise pay per batch. The copies live as long as the model (about a quarter of its weights)."""

    _layouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, model: Kronos, max_len: int) -> DecodeWeights:
        key = (torch.get_num_threads(), tuple((p.data_ptr(), p._version) for p in model.parameters()))
        known = cls._layouts.get(model)
        if known is not None and known[0] == key and known[1] >= max_len:  # longer rotary tables serve too
            return known[2]
        weights = cls(model, max_len)
        cls._layouts[model] = (key, max_len, weights)
        return weights

    def __init__(self, model: Kronos, max_len: int):
        dep = model.dep_layer.cross_attn
        c = model.config
        sizes = [c.d_model, c.ff_dim, 2**c.s1_bits, 2**c.s2_bits]
        parts = block_count(torch.get_num_threads(), sizes)
        self.blocks = [_Block(block, parts) for block in model.transformer]
        dtype = model.transformer[0].self_attn.q_proj.weight.dtype
        tables = [block.self_attn.rotary.inv_freq for block in model.transformer]
        if all(torch.equal(t, tables[0]) for t in tables):  # as in every released model: one table for all
            self.ropes = [_Rope(tables[0], max_len, dtype)] * len(tables)
        else:
            self.ropes = [_Rope(t, max_len, dtype) for t in tables]
        self.fusion = joined([model.embedding.fusion_proj], parts)
        self.dep_kv, self.dep_q = joined([dep.k_proj, dep.v_proj], parts), joined([dep.q_proj], parts)
        self.dep_out, self.dep_heads = joined([dep.out_proj], parts), dep.n_heads
        self.head_s1, self.head_s2 = joined([model.head.proj_s1], parts), joined([model.head.proj_s2], parts)


def _heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, d) -> (B, H, 1, hd)."""
    return x.view(x.shape[0], n_heads, 1, -1)


def step_hidden(model: Kronos, w: DecodeWeights, cache, s1: Tensor, s2: Tensor, stamp: Tensor) -> Tensor:
    """The normalised hidden state (B, d_model) of one new token per row, appended to `cache`'s layers."""
    scale = math.sqrt(model.embedding.d_model)
    e = torch.cat([model.embedding.emb_s1(s1) * scale, model.embedding.emb_s2(s2) * scale], dim=-1)
    x = w.fusion(e) + model.time_emb(stamp[:, None])[:, 0]  # (B, d_model)
    b = x.shape[0]
    pos, last, cos_sin = cache.layers[0].position, None, None
    for blk, rope, kv in zip(w.blocks, w.ropes, cache.layers):
        if rope is not last:  # the tables of this position, once for all blocks that share them
            last, cos_sin = rope, rope.at(pos)
        qkv = blk.qkv(_rms(blk.norm1, x)).view(b, 3, blk.heads, 1, -1).transpose(0, 1)  # (3, B, H, 1, hd)
        qk = _Rope.rotate(qkv[:2], cos_sin)
        kv.append(qk[1], qkv[2])
        x.add_(blk.out(kv.attention(qk[0])))  # x is this step's own tensor: residuals in place
        gate, up = blk.w13(_rms(blk.norm2, x)).chunk(2, dim=-1)
        x.add_(blk.w2(F.silu(gate).mul_(up)))
    return _rms(model.norm, x)


def dep_append(w: DecodeWeights, cache, h: Tensor) -> None:
    """The dependency layer's keys and values of new hidden states h (B, d_model), appended to its cache."""
    k, v = w.dep_kv(h).chunk(2, dim=-1)
    cache.dep.append(_heads(k, w.dep_heads), _heads(v, w.dep_heads))


def s2_step_logits(model: Kronos, w: DecodeWeights, cache, s1_next: Tensor) -> Tensor:
    """s2 logits (B, V2) of the next position given its sampled s1 (B,): a one-token query over the window."""
    q = _heads(w.dep_q(model.embedding.emb_s1(s1_next)), w.dep_heads)
    h = cache.h_last + w.dep_out(cache.dep.attention(q))
    return w.head_s2(_rms(model.dep_layer.norm, h))
