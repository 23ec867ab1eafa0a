"""Autoregressive token generation: prefill the window once, then decode one token at a time with a KV cache.

One step, top to bottom (`forward_tokens`, then `s2_logits`): the tokens' embeddings, every block's pass
(`layers.TransformerBlock.forward`: attention over the cache, feed-forward), the final norm, the dependency
layer's keys and values appended, the s1 logits; then, with the s1 drawn, the s2 logits from its one-token query.
The window's prefill and each decode step are that same pass; the decode step only reads the weights in the
layout `decode.DecodeWeights` gives them. The engine knows token ids and time stamps, not prices (see
`forecast/predictor.py` for those). A row's tokens do not depend on the other rows of its batch
(`invariant.py`), given its own sampler (`RowSampler`). `generate` also keeps the reference's full-recompute
algorithm (`use_cache=False`, `reference_step`), which re-runs the whole window at every step; the two agree
exactly while the history plus the forecast fits in `max_context`. Beyond it the reference slides its window,
which changes every position's hidden state, so the cached path re-prefills the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from kronos_cli.core.errors import KronosError
from kronos_cli.model.compiled import CompiledDecode, DecodePlan, compiled_for
from kronos_cli.model.decode import DecodeWeights, PathsKV
from kronos_cli.model.invariant import batch_invariant
from kronos_cli.model.layers import LayerKV
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.sampling import RowSampler, Sampling
from kronos_cli.model.tokenizer import KronosTokenizer

__all__ = [
    "DecodeWeights",
    "KVCache",
    "RowSampler",
    "Sampling",
    "decode_one_token",
    "decode_windows",
    "generate",
    "forward_tokens",
    "path_counts",
    "reference_step",
]


class BufferPool:
    """The previous call's cache tensors, handed out again to a call of the same shapes.

    A large tensor allocated afresh is memory the kernel maps in page by page on first touch; for a batch
    forecast (64 series x 5 paths) that cost more than copying the cache itself. Only the last call's tensors
    are kept, so the memory held is one cache at most. Not shared between threads (a predictor keeps one per
    thread)."""

    def __init__(self) -> None:
        self._free: dict[tuple, list[Tensor]] = {}

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        stack = self._free.get((tuple(shape), like.dtype, like.device))
        return stack.pop() if stack else like.new_empty(shape)

    def keep(self, tensors: list[Tensor]) -> None:
        self._free = {}
        for t in tensors:
            self._free.setdefault((tuple(t.shape), t.dtype, t.device), []).append(t)


class KVCache:
    """Self-attention caches of every block, plus the dependency layer's keys/values and the last hidden state."""

    def __init__(self, layers: list[LayerKV], dep: LayerKV):
        self.layers, self.dep = layers, dep
        self.h_last: Tensor | None = None

    @classmethod
    def allocate(cls, model: Kronos, batch: int, capacity: int, pool: BufferPool | None = None) -> KVCache:
        p = next(model.parameters())
        c = model.config
        pool = pool or BufferPool()

        def slot(heads: int) -> LayerKV:
            shape = (batch, heads, capacity, c.d_model // heads)
            return LayerKV(pool.take(shape, p), pool.take(shape, p))

        return cls([slot(c.n_heads) for _ in range(c.n_layers)], slot(model.dep_layer.cross_attn.n_heads))

    def tensors(self) -> list[Tensor]:
        return [t for s in (*self.layers, self.dep) for t in (s.k, s.v)]

    def reset(self) -> None:
        for s in (*self.layers, self.dep):
            s.length = 0
        self.h_last = None

    def share(self, paths: int) -> KVCache:
        """This per-series cache, continued by `paths` sample paths per series that share its history
        (`PathsKV`; one-token steps with `DecodeWeights` only)."""
        new = KVCache([PathsKV(s, paths) for s in self.layers], PathsKV(self.dep, paths))
        new.h_last = None if self.h_last is None else self.h_last.repeat_interleave(paths, 0)
        return new

    @property
    def shared(self) -> bool:
        return isinstance(self.dep, PathsKV)

    def repeat_interleave(self, n: int | Tensor, pool: BufferPool | None = None) -> KVCache:
        """The cache of each row repeated n times (row i becomes rows i*n .. i*n+n-1); n may vary per row."""
        take = pool.take if pool is not None else None
        new = KVCache([s.repeat_interleave(n, take) for s in self.layers], self.dep.repeat_interleave(n, take))
        new.h_last = None if self.h_last is None else self.h_last.repeat_interleave(n, 0)
        return new


def forward_tokens(
    model: Kronos,
    cache: KVCache,
    s1: Tensor,
    s2: Tensor,
    stamp: Tensor | None,
    weights: DecodeWeights | None = None,
    time: Tensor | None = None,
) -> Tensor:
    """Append T tokens per row, ids s1 and s2 (B, T) with stamps (B, T, 5), to the cache; returns the s1 logits
    (B, V1) of the position after the last. The one pass of generation: the window's prefill (the modules'
    weights, each product batch-invariant) and every one-token decode step (`weights`: the same weights laid out
    for it, `decode.DecodeWeights`; invariant by construction, so without the per-op dispatch of the context).
    `time`: the stamps' time embedding (B, T, d_model) computed beforehand, in place of `stamp`."""
    with nullcontext() if weights is not None else batch_invariant():
        h = model.hidden(s1, s2, stamp, kv=cache.layers, fused=weights, time=time)  # (B, T, d_model)
        cache.dep.append(
            *model.dep_layer.cross_attn.project_kv(h, None if weights is None else weights.dep)
        )  # (B, H, T, hd) each
        cache.h_last = h[:, -1:]  # (B, 1, d_model)
        return (weights.head_s1 if weights is not None else model.head.proj_s1)(cache.h_last[:, 0])  # (B, V1)


def decode_one_token(
    model: Kronos,
    cache: KVCache,
    s1: Tensor,
    s2: Tensor,
    stamp: Tensor | None,
    weights: DecodeWeights | None = None,
    time: Tensor | None = None,
) -> Tensor:
    """`forward_tokens` of one token per row: ids (B,), stamps (B, 5) or their time embedding `time` (B, d_model)
    -> the next s1 logits (B, V1)."""
    stamp, time = (None if t is None else t[:, None] for t in (stamp, time))
    return forward_tokens(model, cache, s1[:, None], s2[:, None], stamp, weights, time)


def s2_logits(model: Kronos, cache: KVCache, s1_next: Tensor, weights: DecodeWeights | None = None) -> Tensor:
    """s2 logits (B, V2) of the next position given its sampled s1 (B,): a one-token query over the window."""
    with nullcontext() if weights is not None else batch_invariant():
        query = model.embedding.emb_s1(s1_next)[:, None]  # (B, 1, d_model)
        x = model.dep_layer.next_token(cache.h_last, query, cache.dep, None if weights is None else weights.dep)
        return (weights.head_s2 if weights is not None else model.head.proj_s2)(x[:, 0])  # (B, V2)


def greedy(logits: Tensor) -> Tensor:
    """The most likely token of each row (B, V) -> (B,): the draw of an exported forecasting program."""
    return logits.argmax(-1)


def reference_step(
    model: Kronos, s1: Tensor, s2: Tensor, stamp: Tensor, draw: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """One step of the reference algorithm: the whole window (B, T) through the model, the next s1 drawn from
    the last position's logits, then its s2 given it. `generate(use_cache=False)` and the exported program
    (`export/artifacts.ForecastProgram`) step through this."""
    s1_logits, context = model.decode_s1(s1, s2, stamp)  # (B, T, V1), (B, T, d_model)
    s1_next = draw(s1_logits[:, -1])  # (B,)
    return s1_next, draw(model.decode_s2(context, s1_next[:, None])[:, -1])


def decode_windows(
    tokenizer: KronosTokenizer,
    s1: Tensor,
    s2: Tensor,
    hist: int,
    max_context: int,
    shared: tuple[Tensor, Tensor, int | Tensor] | None = None,
) -> Tensor:
    """The bars (B, P, 6) of the tokens after `hist` in s1, s2 (B, hist + P): decoded, as the reference does, from
    the last max_context tokens; a horizon longer than the context is decoded in consecutive windows of
    max_context tokens (the reference cannot forecast past its context: it returns max_context bars). With
    `shared` (each series' history ids and its number of rows), a window's history is decoded once per series,
    not once per path (`KronosTokenizer.decode_after`)."""
    pieces, end = [], s1.shape[1]
    while end > hist:
        take = min(end - hist, max_context)
        start = max(0, end - max_context)
        if shared is not None and start < hist:
            h1, h2, repeats = shared
            pieces.append(
                tokenizer.decode_after([h1[:, start:], h2[:, start:]], [s1[:, hist:end], s2[:, hist:end]], repeats)
            )
        else:
            pieces.append(tokenizer.decode([s1[:, start:end], s2[:, start:end]], half=True)[:, -take:])
        end -= take
    return torch.cat(pieces[::-1], dim=1)


def path_counts(sample_count: int | Sequence[int], batch: int, device: torch.device) -> tuple[int | Tensor, int]:
    """How often each series is repeated (its sample paths), and the number of rows that makes."""
    if isinstance(sample_count, int):
        return sample_count, batch * sample_count
    if len(sample_count) != batch:
        raise ValueError(f"sample_count has {len(sample_count)} entries for {batch} series")
    return torch.tensor(list(sample_count), device=device), sum(sample_count)


@dataclass
class _Rollout:
    """The sequences being generated (each history repeated once per sample path) and the cache that follows
    them; `logits` holds the next s1 logits while the cache is current."""

    model: Kronos
    s1: Tensor  # (rows, L + P)
    s2: Tensor
    stamps: Tensor  # (rows, L + P, 5)
    max_context: int
    draw: RowSampler
    weights: DecodeWeights | None
    pool: BufferPool = dataclasses.field(default_factory=BufferPool)
    compiled: CompiledDecode | None = None  # the compiled step (model/compiled.py), inside max_context only
    cache: KVCache | None = None
    logits: Tensor | None = None
    held: list[Tensor] = dataclasses.field(default_factory=list)  # every cache tensor, for the pool afterwards
    times: Tensor | None = None  # (B, P, d_model): each series' forecast stamps embedded at once, not per step
    drawn: tuple[Tensor, Tensor] | None = None  # the last tokens, not yet in the cache (the compiled step's input)

    def cached_step(
        self, cur: int, last: bool, first: tuple[Tensor, Tensor, Tensor], repeats: int | Tensor
    ) -> tuple[Tensor, Tensor]:
        """Sample position `cur` from the cache, prefilling it first (or again, once the window slid)."""
        start = max(0, cur - self.max_context)
        if self.logits is None and self.cache is None:
            # All paths of a series share their history: prefill each series once, then copy.
            s1, s2, stamp = first
            capacity = min(self.s1.shape[1], self.max_context)
            # With the decode step's weights and one path count, the paths attend to one copy of the history.
            share = self.weights is not None and self.compiled is None and isinstance(repeats, int) and repeats > 1
            prefix = cur - start
            room = prefix + (capacity - prefix) * repeats if share else capacity
            self.cache = KVCache.allocate(self.model, s1.shape[0], room, self.pool)
            self.held += self.cache.tensors()
            self.logits = forward_tokens(self.model, self.cache, s1[:, start:], s2[:, start:], stamp[:, start:cur])
            if self.s1.shape[0] != s1.shape[0]:
                if share:
                    self.cache = self.cache.share(repeats)
                else:
                    self.cache = self.cache.repeat_interleave(repeats, self.pool)
                    self.held += self.cache.tensors()
                self.logits = self.logits.repeat_interleave(repeats, 0)
            if self.weights is not None and self.compiled is None:
                self.times = self.model.time_emb(stamp[:, s1.shape[1] :])
        elif self.logits is None:  # the window slid: every position's hidden state changed
            if self.cache.shared:  # from now on every path has its own window
                capacity = min(self.s1.shape[1], self.max_context)
                self.cache = KVCache.allocate(self.model, self.s1.shape[0], capacity, self.pool)
                self.held += self.cache.tensors()
            self.cache.reset()
            self.logits = forward_tokens(
                self.model, self.cache, self.s1[:, start:cur], self.s2[:, start:cur], self.stamps[:, start:cur]
            )
        s1_next = self.draw(self.logits)
        s2_next = self.draw(s2_logits(self.model, self.cache, s1_next, self.weights))
        self.logits = None
        if not last and cur + 1 <= self.max_context:
            if self.compiled is not None:  # from the next position on, each step and its draws are one graph
                self.cache, self.drawn = self.compiled.wrap(self.cache), (s1_next, s2_next)
            else:
                self.logits = self._step(cur, s1_next, s2_next, repeats)
        return s1_next, s2_next

    def compiled_step(self, cur: int, last: bool) -> tuple[Tensor, Tensor]:
        """Sample position `cur` by the compiled step: the tokens drawn for `cur - 1` appended, then the draws."""
        s1_prev, s2_prev = self.drawn
        s1_next, s2_next, _, _ = self.compiled.advance(
            self.model, self.cache, s1_prev, s2_prev, self.stamps[:, cur - 1], self.weights, self.draw
        )
        self.drawn = None if last else (s1_next, s2_next)
        return s1_next, s2_next

    def _step(self, cur: int, s1: Tensor, s2: Tensor, repeats: int | Tensor) -> Tensor:
        """The cache extended by the tokens drawn for position `cur`; the next s1 logits."""
        if self.times is None:  # the modules' step (a training model, a quantised copy)
            return decode_one_token(self.model, self.cache, s1, s2, self.stamps[:, cur], self.weights)
        time = self.times[:, cur - (self.s1.shape[1] - self.times.shape[1])]  # (B, d_model)
        if not (isinstance(repeats, int) and repeats == 1):
            time = time.repeat_interleave(repeats, 0)  # (rows, d_model)
        return decode_one_token(self.model, self.cache, s1, s2, None, self.weights, time)


def _decode_layout(model: Kronos, use_cache: bool, max_context: int, total: int) -> DecodeWeights | None:
    """The decode step's fused layout of the model's weights, or None where the step uses the modules."""
    # A quantised copy's weights are tensor subclasses (torchao): fusing them would dequantise them every step, so
    # the check is on the type of one weight (all are quantised alike); such a model keeps its modules' products.
    plain = type(model.transformer[0].self_attn.q_proj.weight) in (torch.Tensor, torch.nn.Parameter)
    if not (use_cache and not model.training and plain):
        return None
    # Rotary tables for the next power of two of positions rather than exactly `total`: windows of nearby lengths
    # then share one cached layout instead of each rebuilding it (tens of ms) for every length a backtest asks.
    return DecodeWeights.of(model, min(max_context, 1 << (total - 1).bit_length()))


@torch.no_grad()
def generate(
    model: Kronos,
    s1: Tensor,
    s2: Tensor,
    stamp: Tensor,
    pred_len: int,
    max_context: int,
    sample_count: int | Sequence[int] = 1,
    sampling: Sampling = Sampling(),
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
    sampler: RowSampler | None = None,
    pool: BufferPool | None = None,
    plan: DecodePlan | None = None,
) -> tuple[Tensor, Tensor]:
    """Extend each history (s1, s2 ids (B, L), stamps (B, L + pred_len, 5)) by `pred_len` tokens, `sample_count`
    times (one number, or one per series); returns the full sequences (rows, L + pred_len), series-major (series i
    owns rows i*S .. i*S+S-1). `sampling`/`generator` sample all rows as one draw per step; `sampler` gives each
    series its own (see `RowSampler`). `use_cache=False` runs the reference's full-recompute algorithm. `pool`
    lends the key/value caches of the previous call with the same shapes and keeps this call's. `plan`
    (`compiled.decode_plan`) may compile the decode step, used while the history plus the forecast fits in
    max_context."""
    if pred_len <= 0:
        raise KronosError(f"pred_len must be > 0, got {pred_len}")
    hist, total = s1.shape[1], s1.shape[1] + pred_len
    repeats, rows = path_counts(sample_count, s1.shape[0], s1.device)
    draw = sampler or RowSampler.uniform(rows, sampling, generator)
    if draw.rows != rows:
        raise ValueError(f"the sampler covers {draw.rows} rows, the batch has {rows}")
    seq_s1, seq_s2 = s1.new_empty(rows, total), s2.new_empty(rows, total)
    seq_s1[:, :hist], seq_s2[:, :hist] = s1.repeat_interleave(repeats, 0), s2.repeat_interleave(repeats, 0)
    weights = _decode_layout(model, use_cache, max_context, total)
    roll = _Rollout(
        model, seq_s1, seq_s2, stamp.repeat_interleave(repeats, 0), max_context, draw, weights, pool or BufferPool()
    )
    if weights is not None and plan is not None and plan.compile_mode and total <= max_context:
        roll.compiled = compiled_for(model, plan.compile_mode, forward_tokens, s2_logits)
    for i in range(pred_len):
        cur = hist + i
        if roll.drawn is not None:
            s1_next, s2_next = roll.compiled_step(cur, i + 1 == pred_len)
        elif use_cache:
            s1_next, s2_next = roll.cached_step(cur, i + 1 == pred_len, (s1, s2, stamp), repeats)
        else:
            start = max(0, cur - max_context)
            with batch_invariant():
                s1_next, s2_next = reference_step(
                    model, seq_s1[:, start:cur], seq_s2[:, start:cur], roll.stamps[:, start:cur], draw
                )
        seq_s1[:, cur], seq_s2[:, cur] = s1_next, s2_next
        if progress is not None:
            progress(i + 1, pred_len)
    roll.pool.keep(roll.held)
    return seq_s1, seq_s2
