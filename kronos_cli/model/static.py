"""The compiled decode step's static world: the weights behind plain products, key/value caches at a fixed
capacity with the next position held in a tensor, and the step's inputs written into buffers that every call of
a shape reuses. With these every step of a run has one shape and the same tensors, so it compiles once and its
graph can be called again without dynamo (`graphcall.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kronos_cli.model.decode import DecodeWeights, FusedBlock, FusedDep
from kronos_cli.model.invariant import RowBlockLinear
from kronos_cli.model.layers import LayerKV
from kronos_cli.model.sampling import RowSampler, Rule, Sampling


class PlainLinear:
    """`F.linear` over a fused weight of the decode layout: one product, torch's own kernel for its shape."""

    def __init__(self, fused: RowBlockLinear):
        self.weight, self.bias = fused.weight, fused.bias

    def __call__(self, x: Tensor) -> Tensor:
        # the bias added apart: inductor adds it in the next fused kernel instead of copying it into the product's
        # output first (addmm), 1-2% of a step
        return F.linear(x, self.weight) if self.bias is None else F.linear(x, self.weight) + self.bias


class StaticBlock(FusedBlock):
    """A `FusedBlock` with plain products whose rotary tables are read at a position held in a tensor."""

    def __init__(self, fused: FusedBlock):  # the same tables and weights, not a copy of them
        self.__dict__.update(fused.__dict__)
        for name in ("qkv_w", "out_w", "w13", "w2"):
            setattr(self, name, PlainLinear(getattr(fused, name)))

    def rope(self, start: Tensor, length: int) -> tuple[Tensor, Tensor]:
        at = start.view(1) + torch.arange(length, device=start.device)
        return self.tables.cos.index_select(0, at), self.tables.sin.index_select(0, at)


def static_layout(weights: DecodeWeights) -> DecodeWeights:
    """`weights` for the compiled step: the same tensors behind plain products and tensor-positioned rotary
    tables (a shallow copy; nothing is copied but references)."""
    out = copy.copy(weights)
    out.blocks = [StaticBlock(b) for b in weights.blocks]
    out.fusion, out.head_s1, out.head_s2 = (PlainLinear(w) for w in (weights.fusion, weights.head_s1, weights.head_s2))
    dep: FusedDep = copy.copy(weights.dep)
    dep.kv_w, dep.q_w, dep.out_w = (PlainLinear(w) for w in (weights.dep.kv_w, weights.dep.q_w, weights.dep.out_w))
    out.dep = dep
    return out


class StaticKV(LayerKV):
    """A layer's keys and values at a fixed capacity, its next position `pos` a tensor (shared by every layer of
    the step): the `KVSlot` of the compiled step. Slots past the position are zero; `sliced` attention reads only
    the slots the query sees (their count a size known when the graph runs), else it reads every slot and masks."""

    def __init__(self, k: Tensor, v: Tensor, pos: Tensor, causal: bool = True, sliced: bool = False):
        super().__init__(k, v)
        self.pos, self.causal, self.sliced = pos, causal, sliced
        self.slots = torch.arange(k.shape[2], device=k.device)

    @property
    def position(self) -> Tensor:  # type: ignore[override]
        return self.pos

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # under autocast k and v come in the products' dtype; the cache keeps the model's, as `LayerKV` does
        self.k.index_copy_(2, self.pos.view(1), k.to(self.k.dtype))
        self.v.index_copy_(2, self.pos.view(1), v.to(self.v.dtype))
        return self.k, self.v

    def attention(self, q: Tensor) -> Tensor:
        """One query per row (B, H, 1, hd) over the slots it sees -> (B, 1, H * hd). Written as products and sums
        rather than scaled_dot_product_attention: inductor fuses them into one pass over the cache (a third faster
        on the CPU for one query than the attention kernel, which is made for many)."""
        # a layer's query sees its own new key (appended at pos); the dependency layer's sees the cached ones
        k, v = self.k, self.v
        if self.sliced:  # the capacity is padded to a power of two: up to half of it not yet written
            seen = self.pos.item() + int(self.causal)  # under dynamo (capture_scalar_outputs) a size of the run
            torch._check(seen >= 1)
            torch._check(seen <= k.shape[2])
            k, v = k[:, :, :seen], v[:, :, :seen]
        scores = (q * k.to(q.dtype)).sum(-1) * q.shape[-1] ** -0.5  # (B, H, slots)
        if not self.sliced:  # static shapes (CUDA graphs): every slot, those not seen masked out
            mask = self.slots <= self.pos if self.causal else self.slots < self.pos
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        out = (weights[..., None] * v.to(q.dtype)).sum(-2)  # (B, H, hd)
        return out.reshape(out.shape[0], 1, -1)


@dataclass
class StepInputs:
    """What one decode step reads besides the weights and caches, in buffers of the bucket's rows: the last
    tokens (n, 1), their stamps (n, 1, 5), the draws' noise (n, V) for s1 and s2 (None where every row is greedy)
    and the per-row sampling rule (or one `Sampling` for all rows, a constant of the compiled graph)."""

    s1: Tensor
    s2: Tensor
    stamp: Tensor
    noise: tuple[Tensor | None, Tensor | None]
    rule: Rule
    call: Callable[[], tuple] | None = None  # the graph's call without dynamo (`graphcall`), once known
    tried: bool = False  # a first call went through dynamo

    @classmethod
    def allocate(cls, rows: int, stamp_like: Tensor, vocab: tuple[int, int], draw: RowSampler) -> StepInputs:
        device = stamp_like.device
        tokens = [torch.zeros(rows, 1, dtype=torch.long, device=device) for _ in range(2)]
        stamp = torch.zeros(rows, 1, stamp_like.shape[-1], dtype=stamp_like.dtype, device=device)
        noise = tuple(torch.ones(rows, v, device=device) for v in vocab) if draw.random else (None, None)
        return cls(tokens[0], tokens[1], stamp, noise, graph_rule(draw, device, rows))

    def load(self, s1: Tensor, s2: Tensor, stamp: Tensor, draw: RowSampler) -> None:
        """The step's values written into the buffers (rows past them keep their zeros and ones)."""
        rows = s1.shape[0]
        self.s1[:rows, 0].copy_(s1)
        self.s2[:rows, 0].copy_(s2)
        self.stamp[:rows, 0].copy_(stamp)
        for out in self.noise:
            if out is not None:
                draw.noise(out.shape[-1], out.device, out)
        if not isinstance(self.rule, Sampling):  # per-row values: this call's sampler's
            for buf, value in zip(self.rule, draw.rule(self.s1.device, self.s1.shape[0])):
                buf.copy_(value)


def graph_rule(draw: RowSampler, device: torch.device, rows: int) -> Rule:
    """The sampler's rule as the compiled graph takes it: one `Sampling` (its filtering values only: the graph's
    constants) or per-row tensors (inputs; copies, filled by `StepInputs.load`)."""
    rule = draw.rule(device, rows)
    if isinstance(rule, Sampling):
        return Sampling(*rule_key(rule))
    return tuple(t.clone() for t in rule)


def rule_key(rule: Rule) -> tuple | str:
    """What tells compiled graphs of a rule apart: a `Sampling`'s filtering values (constants of the graph); per-row
    rules are inputs, one graph for all."""
    return (rule.temperature, rule.top_k, rule.top_p) if isinstance(rule, Sampling) else "per row"
