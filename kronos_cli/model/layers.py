"""Transformer building blocks shared by the tokenizer and the predictor, with the reference's parameter names."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kronos_cli.market.stamps import STAMP_COLUMNS, STAMP_SIZES


class KVSlot(Protocol):
    """A layer's cache as attention uses it: the next token's position, appending keys/values, attending."""

    length: int

    @property
    def position(self) -> int: ...

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]: ...

    def attention(self, q: Tensor) -> Tensor: ...


class LayerKV:
    """Preallocated keys and values (B, H, capacity, head_dim) of one attention layer: a `KVSlot`."""

    def __init__(self, k: Tensor, v: Tensor):
        self.k, self.v, self.length = k, v, 0

    @classmethod
    def empty(cls, batch: int, heads: int, capacity: int, head_dim: int, like: Tensor) -> LayerKV:
        return cls(like.new_empty(batch, heads, capacity, head_dim), like.new_empty(batch, heads, capacity, head_dim))

    @property
    def position(self) -> int:
        """The position of the next token (its rotary angle)."""
        return self.length

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        end = self.length + k.shape[-2]
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def attention(self, q: Tensor) -> Tensor:
        """Queries of the last T cached positions, q (B, H, T, head_dim), over every cached key -> (B, T, H *
        head_dim): causal when the queries are all of them, each seeing the positions up to its own otherwise."""
        n, t = self.length, q.shape[-2]
        k, v = self.k[:, :, :n], self.v[:, :, :n]
        if t == n:
            return _merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))
        mask = None if t == 1 else torch.ones(t, n, dtype=torch.bool, device=q.device).tril(n - t)
        return _merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))

    def repeat_interleave(self, n: int | Tensor, take: Callable[[tuple, Tensor], Tensor] | None = None) -> LayerKV:
        """Each row's keys and values repeated n times (row i becomes rows i*n .. i*n+n-1); n may vary per row.
        `take(shape, like)` supplies the new tensors when n is a number (a buffer pool's, say)."""

        def repeated(t: Tensor) -> Tensor:
            if take is None or not isinstance(n, int):
                return t.repeat_interleave(n, 0)
            out = take((t.shape[0] * n, *t.shape[1:]), t)
            out.view(t.shape[0], n, *t.shape[1:]).copy_(t[:, None].expand(t.shape[0], n, *t.shape[1:]))
            return out

        out = LayerKV(repeated(self.k), repeated(self.v))
        out.length = self.length
        return out


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32 and not torch.is_grad_enabled():
            # One op instead of five, bit for bit the formula below (tests/model/test_engine.py); its backward
            # is not the formula's, so training differentiates the formula.
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        xf = x.float()  # normalise in float32 whatever the activation dtype
        out = xf * torch.rsqrt(torch.mean(xf * xf, dim=-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU feed-forward without biases: w2(silu(w1 x) * w3 x), computed by `TransformerBlock.forward`."""

    def __init__(self, d_model: int, ff_dim: int, dropout_p: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)
        self.ffn_dropout = nn.Dropout(dropout_p)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding; `inv_freq` is persistent so it appears in the state dict.

    The one rotation of the package: x * cos + rotate_half(x) * sin, written as x * cos + roll(x) * signed_sin
    (rotate_half(x) = (-x2, x1) = roll(x) * (-1, +1), and -x2 * sin equals x2 * (-sin) exactly). Training,
    windows and the decode step (`decode.FusedBlock` keeps the tables of every position) rotate through it."""

    def __init__(self, head_dim: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq)

    def tables(self, start: int, length: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos and signed sin (length, head_dim) of positions start .. start + length - 1."""
        t = torch.arange(start, start + length, device=self.inv_freq.device).type_as(self.inv_freq)
        freqs = torch.outer(t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        sin = emb.sin()
        sin[:, : self.inv_freq.shape[0]] *= -1
        return emb.cos().to(dtype), sin.to(dtype)

    @staticmethod
    def rotate(x: Tensor, cos_sin: tuple[Tensor, Tensor]) -> Tensor:
        """x (..., T, head_dim) rotated by the tables of its T positions (T, head_dim)."""
        swapped = torch.roll(x, x.shape[-1] // 2, dims=-1)  # (x2, x1)
        return x * cos_sin[0] + swapped * cos_sin[1]  # not addcmul: its fused multiply-add rounds otherwise


def _split_heads(x: Tensor, n_heads: int) -> Tensor:
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)  # (B, H, T, hd)


def dropped(dropout: nn.Dropout, x: Tensor) -> Tensor:
    """x through a dropout module while training; in evaluation, where it is the identity, without its call."""
    return dropout(x) if dropout.training else x


def _merge_heads(x: Tensor) -> Tensor:
    b, h, t, hd = x.shape
    return x.transpose(1, 2).contiguous().view(b, t, h * hd)  # (B, T, d)


def _attention_parts(
    module: nn.Module, d_model: int, n_heads: int, attn_dropout_p: float, resid_dropout_p: float
) -> None:
    """The reference's attention parameters, in its names: q/k/v/out projections with bias and a rotary table."""
    module.n_heads = n_heads
    module.q_proj = nn.Linear(d_model, d_model)
    module.k_proj = nn.Linear(d_model, d_model)
    module.v_proj = nn.Linear(d_model, d_model)
    module.out_proj = nn.Linear(d_model, d_model)
    module.rotary = RotaryEmbedding(d_model // n_heads)
    module.attn_dropout_p = attn_dropout_p
    module.resid_dropout = nn.Dropout(resid_dropout_p)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention with RoPE: the parameters, and attention over new tokens (the block's
    forward computes their projections)."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0):
        super().__init__()
        _attention_parts(self, d_model, n_heads, attn_dropout_p, resid_dropout_p)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, kv: KVSlot | None = None) -> Tensor:
        """Rotated q, k and v (B, H, T, hd) of T new tokens -> (B, T, d): causal over themselves, and with `kv`
        over its cached tokens before them too (k and v are appended to it)."""
        if kv is not None:
            kv.append(k, v)
            return kv.attention(q)
        dropout = self.attn_dropout_p if self.training else 0.0
        return _merge_heads(F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True))


class CrossAttention(nn.Module):
    """The dependency layer's attention: queries from the s1 embedding, keys/values from the hidden states.

    As in the reference, RoPE positions come from the query length, and attention is causal only when asked
    (the reference asks in training mode only; a one-token query needs no mask).
    """

    def __init__(self, d_model: int, n_heads: int = 4, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0):
        super().__init__()
        _attention_parts(self, d_model, n_heads, attn_dropout_p, resid_dropout_p)

    def kv(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """The key and value projections (B, T, d) of hidden states (`decode.FusedDep.kv` fuses them)."""
        return self.k_proj(hidden), self.v_proj(hidden)

    def project_kv(self, hidden: Tensor, fused=None) -> tuple[Tensor, Tensor]:
        """Keys and values (B, H, T, hd) of hidden states, unrotated (what a one-token query sees); `fused`: the
        decode step's layout of the same weights."""
        k, v = (fused or self).kv(hidden)
        return _split_heads(k, self.n_heads), _split_heads(v, self.n_heads)

    def attend(self, query: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
        q = _split_heads(self.q_proj(query), self.n_heads)
        if q.shape[-2] > 1:
            if q.shape[-2] != k.shape[-2]:
                raise ValueError("cross-attention needs a one-token query or as many queries as keys")
            tables = self.rotary.tables(0, q.shape[-2], q.dtype)
            q, k = self.rotary.rotate(q, tables), self.rotary.rotate(k, tables)
        # A one-token query sits at position 0: its rotation is the identity, for q and k alike.
        dropout = self.attn_dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal and q.shape[-2] > 1)
        return self.resid_dropout(self.out_proj(_merge_heads(out)))

    def q(self, x: Tensor) -> Tensor:
        return self.q_proj(x)

    def out(self, a: Tensor) -> Tensor:
        return self.out_proj(a)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, causal: bool = False) -> Tensor:
        k = _split_heads(self.k_proj(key), self.n_heads)
        v = _split_heads(self.v_proj(value), self.n_heads)
        return self.attend(query, k, v, causal)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm1 x), then x + ffn(norm2 x)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        ffn_dropout_p: float = 0.0,
        attn_dropout_p: float = 0.0,
        resid_dropout_p: float = 0.0,
    ):
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = SelfAttention(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim, ffn_dropout_p)

    def forward(self, x: Tensor, kv: KVSlot | None = None, fused=None) -> Tensor:
        """x (B, T, d) -> (B, T, d): the one pass of a block, for training, windows and one-token steps alike.
        With `kv` the T tokens continue its cached ones; `fused` (`decode.FusedBlock`) is the decode step's
        layout of this block's weights and rotary tables, which computes the same linear maps as the modules."""
        attn, lin = self.self_attn, fused or self
        start = 0 if kv is None else kv.position
        q, k, v = lin.qkv(self.norm1(x), start)  # (B, H, T, hd) each, q and k rotated
        x = x + dropped(attn.resid_dropout, lin.out(attn.attend(q, k, v, kv)))
        gate, up = lin.gate_up(self.norm2(x))  # (B, T, ff_dim) each
        return x + dropped(self.ffn.ffn_dropout, lin.down(F.silu(gate) * up))

    # The block's linear maps, by its modules; `decode.FusedBlock` computes them from concatenated weights.
    def qkv(self, h: Tensor, start: int) -> tuple[Tensor, Tensor, Tensor]:
        """q, k and v (B, H, T, hd) of h (B, T, d), q and k rotated for positions start .. start + T - 1."""
        a = self.self_attn
        q, k, v = (_split_heads(t, a.n_heads) for t in (a.q_proj(h), a.k_proj(h), a.v_proj(h)))
        tables = a.rotary.tables(start, h.shape[1], q.dtype)
        return a.rotary.rotate(q, tables), a.rotary.rotate(k, tables), v

    def out(self, a: Tensor) -> Tensor:
        return self.self_attn.out_proj(a)

    def gate_up(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.ffn.w1(h), self.ffn.w3(h)

    def down(self, z: Tensor) -> Tensor:
        return self.ffn.w2(z)


class HierarchicalEmbedding(nn.Module):
    """Embeds (s1, s2) token pairs: fusion_proj(cat(emb_s1 * sqrt(d), emb_s2 * sqrt(d)))."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.emb_s1 = nn.Embedding(2**s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2**s2_bits, d_model)
        self.fusion_proj = nn.Linear(2 * d_model, d_model)

    def forward(self, s1_ids: Tensor, s2_ids: Tensor, fusion=None) -> Tensor:
        """(B, T) ids -> (B, T, d); `fusion`: the decode step's layout of `fusion_proj`."""
        scale = math.sqrt(self.d_model)
        e = torch.cat([self.emb_s1(s1_ids) * scale, self.emb_s2(s2_ids) * scale], dim=-1)  # (B, T, 2d)
        return (fusion or self.fusion_proj)(e)


class FixedEmbedding(nn.Module):
    """A frozen sinusoidal table stored as `emb.weight`."""

    def __init__(self, size: int, d_model: int):
        super().__init__()
        w = torch.zeros(size, d_model)
        position = torch.arange(0, size).float().unsqueeze(1)
        div_term = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
        w[:, 0::2] = torch.sin(position * div_term)
        w[:, 1::2] = torch.cos(position * div_term)
        self.emb = nn.Embedding(size, d_model)
        self.emb.weight = nn.Parameter(w, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.emb(x).detach()


# Stamp column order and table sizes: minute, hour, weekday (Monday = 0), day, month.
TIME_FIELDS = tuple(zip(STAMP_COLUMNS, STAMP_SIZES))  # each stamp column and its table size


class TemporalEmbedding(nn.Module):
    def __init__(self, d_model: int, learn_te: bool):
        super().__init__()
        for name, size in TIME_FIELDS:
            table = nn.Embedding(size, d_model) if learn_te else FixedEmbedding(size, d_model)
            setattr(self, f"{name}_embed", table)

    def forward(self, stamp: Tensor) -> Tensor:
        stamp = stamp.long()  # (B, T, 5)
        out = None
        for i, (name, _) in enumerate(TIME_FIELDS):
            e = getattr(self, f"{name}_embed")(stamp[..., i])
            out = e if out is None else out + e
        return out


class DependencyAwareLayer(nn.Module):
    """norm(hidden + cross_attn(query = s1 embedding, key = value = hidden))."""

    def __init__(self, d_model: int, n_heads: int = 4, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0):
        super().__init__()
        self.cross_attn = CrossAttention(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm = RMSNorm(d_model)

    def forward(self, hidden: Tensor, sibling_embed: Tensor, causal: bool) -> Tensor:
        return self.norm(hidden + self.cross_attn(sibling_embed, hidden, hidden, causal=causal))

    def next_token(self, h_last: Tensor, s1_embed: Tensor, kv: KVSlot, fused=None) -> Tensor:
        """`forward` for one new token per row: the last hidden state h_last (B, 1, d) and the embedding of its
        sampled s1 (B, 1, d), whose query attends to the window's cached keys and values -> (B, 1, d). A
        one-token query sits at position 0: its rotation is the identity. `fused`: `decode.FusedDep`."""
        attn = self.cross_attn
        lin = fused or attn
        q = _split_heads(lin.q(s1_embed), attn.n_heads)  # (B, H, 1, hd)
        return self.norm(h_last + dropped(attn.resid_dropout, lin.out(kv.attention(q))))


class DualHead(nn.Module):
    def __init__(self, s1_bits: int, s2_bits: int, d_model: int):
        super().__init__()
        self.proj_s1 = nn.Linear(d_model, 2**s1_bits)
        self.proj_s2 = nn.Linear(d_model, 2**s2_bits)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_s1(x)

    def cond_forward(self, x2: Tensor) -> Tensor:
        return self.proj_s2(x2)
