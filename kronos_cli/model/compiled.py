"""The one-token decode step compiled by torch.compile, paid for once per machine (`forecast.compile`).

The compiled step is the engine's own step (`engine.forward_tokens`, `engine.s2_logits`) traced by dynamo, over
another layout of the same weights (`static_layout`): plain products (`F.linear`, a matrix-vector sweep for one
series) instead of the batch-invariant tiles, the rotary tables read at a position held in a tensor, and the
key/value caches at a fixed capacity (`StaticKV`: writes by `index_copy_`, attention over every slot with a
mask), so every step of a run has one shape and compiles once. Rows are padded to a bucket (1, 2, 4, ..., 256,
then multiples of 256) and capacities to a power of two, so that few shapes are compiled; the buffers of a shape
are kept and reused. Inductor's FX graph cache keeps the compiled code under `compile_cache_dir()`
(~/.cache/kronos/compile, or $KRONOS_COMPILE_CACHE): a second process loads it instead of compiling.

Measured on the project's 2-core CPU, Kronos-small, one series (benchmarks/bench_forecast.py --compiled): the
eager step (tiles) 10.1 ms, the compiled one 3.4-3.5 ms, torch's matrix-vector sweep over the same weights 2.0 ms;
compiling takes 18-35 s in a fresh cache directory and 4-6 s from a warm one. Of the compiled step's time the
products take about what the sweep does; the rest is the graph's own glue (0.6 ms), the masked attention
(0.4 ms), the s2 step's call and the two draws (0.4 ms). Dynamo's guards (0.3 ms in full) are checked in full
only at a graph's first two calls of a run (`CompiledDecode._call`).

What it changes: the masked attention over a fixed capacity and the plain products round differently from the
eager step (logits agree to 1e-5; tokens agree where no two candidates are that close, see
tests/model/test_compiled.py), and a row's bits depend on its bucket: the compiled step is not batch-invariant,
so `decode_plan` keeps it off where invariance is required (the server's dynamic batching).
"""

from __future__ import annotations

import copy
import logging
import os
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from kronos_cli.core.errors import KronosError
from kronos_cli.model.decode import DecodeWeights, FusedBlock, FusedDep
from kronos_cli.model.invariant import RowBlockLinear
from kronos_cli.model.layers import LayerKV, _merge_heads

log = logging.getLogger(__name__)

SETTINGS = ("auto", "on", "off")
CACHE_ENV = "KRONOS_COMPILE_CACHE"
DEFAULT_CACHE = Path("~/.cache/kronos/compile")


@dataclass(frozen=True)
class Payback:
    """What compiling costs and earns on a device: seconds saved per decode step, seconds to compile with a cold
    and with a warm cache directory."""

    saving_s: float
    cold_s: float
    warm_s: float

    def earns(self, steps: int, warm: bool) -> bool:
        return steps * self.saving_s > (self.warm_s if warm else self.cold_s)


# CPU: measured (module docstring), the saving taken at one series (larger batches save less per row but more per
# step). CUDA: not measured here; one step of Kronos-small launches about 150 kernels (~1.5 ms of launch overhead
# that a CUDA graph replays in one), and compiling with CUDA graphs takes about a minute cold.
PAYBACK = {"cpu": Payback(0.007, 30.0, 6.0), "cuda": Payback(0.0015, 60.0, 10.0)}
COMPILE_MODES = {"cpu": "default", "cuda": "reduce-overhead"}  # mps: inductor's MPS backend is experimental


@dataclass(frozen=True)
class DecodePlan:
    """How a run decodes: `compile_mode` (None: eager; torch.compile's mode otherwise), the products' `dtype`
    ("fp32" or "bf16"), and why, in words (logged)."""

    compile_mode: str | None
    dtype: str
    reason: str = ""

    def __iter__(self):  # (compile_mode, dtype) = decode_plan(...)
        return iter((self.compile_mode, self.dtype))


def decode_plan(
    device_type: str,
    dtype_ok: bool,
    steps: int,
    setting: str | bool = "auto",
    invariant: bool = False,
    warm: bool = False,
) -> DecodePlan:
    """The decode step for a run of `steps` decode steps on `device_type` (cpu, cuda, mps).

    Args:
        dtype_ok: the run forecasts in bf16 (asked for, or chosen by `runtime/precision.auto_dtype`'s check): on
            CUDA the plan then says bf16.
        setting: `forecast.compile`: on (True: YAML reads on as true), off (False), or auto, which compiles when
            the steps pay for it (steps x the saving per step > the compile time, `PAYBACK`), never where
            `invariant` (a row's bits must not depend on its batch: the compiled step's do) and never on mps.
        warm: the compile cache already holds this run's code (the compile time is then a few seconds).
    """
    setting = check_compile(setting)
    dtype = "bf16" if device_type == "cuda" and dtype_ok else "fp32"
    mode = COMPILE_MODES.get(device_type)
    if setting == "off":
        return DecodePlan(None, dtype, "compile is off")
    if mode is None:
        if setting == "on":
            raise KronosError(
                f"compiling the decode step is not supported on {device_type}; set compile to auto or off",
                setting="forecast.compile",
            )
        return DecodePlan(None, dtype, f"no compiled step on {device_type}")
    if setting == "on":
        return DecodePlan(mode, dtype, "compile is on")
    if invariant:
        return DecodePlan(None, dtype, "batch invariance is required: the compiled step's rows depend on the bucket")
    payback = PAYBACK[device_type]
    if not payback.earns(steps, warm):
        cost = payback.warm_s if warm else payback.cold_s
        return DecodePlan(None, dtype, f"{steps} decode steps save less than the {cost:.0f} s compile costs")
    return DecodePlan(mode, dtype, f"{steps} decode steps pay for compiling")


def check_compile(setting: str | bool) -> str:
    """`forecast.compile` as auto, on or off (YAML reads on and off as true and false), or a one-line error."""
    if isinstance(setting, bool):
        setting = "on" if setting else "off"
    if setting not in SETTINGS:
        raise KronosError(f"compile must be one of {', '.join(SETTINGS)}, got {setting!r}", setting="compile")
    return setting


def cache_is_warm() -> bool:
    """Whether the compile cache holds code from an earlier process (compiling then costs a few seconds)."""
    path = Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or compile_cache_dir()).expanduser()
    return path.is_dir() and any(path.iterdir())


def compile_cache_dir() -> Path:
    """Where the compiled code is kept: $KRONOS_COMPILE_CACHE, else ~/.cache/kronos/compile."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def use_compile_cache(directory: Path | None = None) -> Path:
    """Point inductor's on-disk caches (the FX graph cache among them) at `directory` (default
    `compile_cache_dir()`), unless TORCHINDUCTOR_CACHE_DIR already names one. Inductor reads it at each compile."""
    path = Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or directory or compile_cache_dir()).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    import torch._inductor.config as inductor  # lazy: inductor is heavy and only compiling needs it

    inductor.fx_graph_cache = True
    return path


def bucket(rows: int) -> int:
    """The rows a step is padded to: the next power of two up to 256, then the next multiple of 256."""
    return 1 << (rows - 1).bit_length() if rows <= 256 else -(-rows // 256) * 256


class PlainLinear:
    """`F.linear` over a fused weight of the decode layout: one product, torch's own kernel for its shape."""

    def __init__(self, fused: RowBlockLinear):
        self.weight, self.bias = fused.weight, fused.bias

    def __call__(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


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
    the step): the `KVSlot` of the compiled step. Slots past the position are zero and masked out."""

    def __init__(self, k: Tensor, v: Tensor, pos: Tensor, causal: bool = True):
        super().__init__(k, v)
        self.pos, self.causal = pos, causal
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
        # a layer's query sees its own new key (appended at pos); the dependency layer's sees the cached ones
        seen = self.slots <= self.pos if self.causal else self.slots < self.pos
        return _merge_heads(F.scaled_dot_product_attention(q, self.k, self.v, attn_mask=seen[None]))


@dataclass
class _Buffers:
    """The static caches of one shape (bucket rows x capacity), reused by every call of that shape."""

    layers: list[StaticKV]
    dep: StaticKV
    pos: Tensor


Step = Callable[..., Tensor]


class CompiledDecode:
    """The engine's one-token step and s2 step of one model, compiled for the shapes a run uses.

    `wrap` turns a prefilled cache into the static one (rows padded to their bucket), `decode_one_token` and
    `s2_logits` take the engine's arguments. Not shared between threads (its buffers are reused)."""

    def __init__(self, mode: str, forward_tokens: Step, s2_logits: Step):
        log.info("decode step compiled by torch.compile (mode %s), its code kept in %s", mode, use_compile_cache())
        self.mode = mode
        self._step = torch.compile(forward_tokens, mode=mode, dynamic=False)
        self._s2 = torch.compile(s2_logits, mode=mode, dynamic=False)
        self._buffers: dict[tuple, _Buffers] = {}
        self._layout: tuple[DecodeWeights, DecodeWeights] | None = None  # the last weights and their layout
        self.rows = 0
        self._guarded: dict[str, int] = {}  # each graph's calls since the last `wrap`

    def layout(self, weights: DecodeWeights) -> DecodeWeights:
        if self._layout is None or self._layout[0] is not weights:
            self._layout = (weights, static_layout(weights))
        return self._layout[1]

    def _buffers_for(self, cache, rows: int, capacity: int) -> _Buffers:
        first = cache.layers[0].k
        key = (rows, capacity, first.dtype, first.device, len(cache.layers), first.shape[1], cache.dep.k.shape[1])
        found = self._buffers.get(key)
        if found is None:
            pos = torch.zeros((), dtype=torch.long, device=first.device)

            def slot(like: Tensor, causal: bool) -> StaticKV:
                shape = (rows, like.shape[1], capacity, like.shape[3])
                return StaticKV(like.new_zeros(shape), like.new_zeros(shape), pos, causal)

            found = _Buffers([slot(s.k, True) for s in cache.layers], slot(cache.dep.k, False), pos)
            if self.mode == "reduce-overhead":  # CUDA graphs replay fixed addresses: these buffers are them
                for s in (*found.layers, found.dep):
                    torch._dynamo.mark_static_address(s.k)
                    torch._dynamo.mark_static_address(s.v)
                torch._dynamo.mark_static_address(pos)
            self._buffers[key] = found
        return found

    def wrap(self, cache):
        """The prefilled `cache` (an `engine.KVCache` of plain `LayerKV`s) copied into the static buffers of its
        bucket; returns a `KVCache` over them."""
        rows, length = cache.layers[0].k.shape[0], cache.layers[0].length
        capacity = max(16, 1 << (cache.layers[0].k.shape[2] - 1).bit_length())
        buf = self._buffers_for(cache, bucket(rows), capacity)
        for old, new in zip((*cache.layers, cache.dep), (*buf.layers, buf.dep)):
            new.k.zero_(), new.v.zero_()
            new.k[:rows, :, :length], new.v[:rows, :, :length] = old.k[:, :, :length], old.v[:, :, :length]
        buf.pos.fill_(length)
        static = type(cache)(buf.layers, buf.dep)
        static.h_last = _pad(cache.h_last, bucket(rows))
        self.rows = rows
        self._guarded = {}
        return static

    def _call(self, graph: str, fn: Callable[..., Tensor], *args) -> Tensor:
        """`fn(*args)` with dynamo's guards in full at the graph's first two calls after `wrap`, then only those
        that tell its compiled variants apart (`skip_guard_eval_unsafe`): from the second step on, a step's inputs
        are the last step's outputs and nothing else a guard checks changes (the same model, layout, static buffers
        and shapes; only tensor values move), and the full check cost about 0.3 ms a step on the CPU. (The first
        step's inputs come from the prefill, whose strides may differ: its second call may compile a variant.) A
        call that would still need a new variant is refused by torch before it runs, and runs again in full."""
        calls = self._guarded.get(graph, 0)
        self._guarded[graph] = calls + 1
        if calls < 2:
            return fn(*args)
        try:
            with _skip_guards():
                return fn(*args)
        except RuntimeError as exc:
            if "skip_guard_eval_unsafe" not in str(exc):
                raise
            self._guarded[graph] = 0
            return fn(*args)

    def decode_one_token(self, model, cache, s1: Tensor, s2: Tensor, stamp: Tensor, weights: DecodeWeights) -> Tensor:
        """`engine.decode_one_token` on a wrapped cache: ids (rows,), stamps (rows, 5) -> s1 logits (rows, V1)."""
        n = bucket(self.rows)
        s1, s2, stamp = (_pad(t, n)[:, None] for t in (s1, s2, stamp))
        logits = self._call("step", self._step, model, cache, s1, s2, stamp, self.layout(weights))
        cache.layers[0].pos.add_(1)
        return logits[: self.rows]

    def s2_logits(self, model, cache, s1_next: Tensor, weights: DecodeWeights) -> Tensor:
        """`engine.s2_logits` on a wrapped cache: s1 ids (rows,) -> s2 logits (rows, V2)."""
        s1_next = _pad(s1_next, bucket(self.rows))
        return self._call("s2", self._s2, model, cache, s1_next, self.layout(weights))[: self.rows]


def _skip_guards():
    """`torch.compiler.set_stance(skip_guard_eval_unsafe=True)` where this torch has it (2.6+), else nothing."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return nullcontext() if set_stance is None else set_stance("default", skip_guard_eval_unsafe=True)


def _pad(t: Tensor, rows: int) -> Tensor:
    """t with zero rows appended up to `rows`."""
    if t.shape[0] == rows:
        return t
    return torch.cat([t, t.new_zeros(rows - t.shape[0], *t.shape[1:])])


_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {mode: CompiledDecode}


def compiled_for(model: torch.nn.Module, mode: str, forward_tokens: Step, s2_logits: Step) -> CompiledDecode:
    """The compiled step of `model` in `mode`, made once per model (dynamo's guards then match every later call);
    kept as long as the model is."""
    modes = _compiled.setdefault(model, {})
    if mode not in modes:
        modes[mode] = CompiledDecode(mode, forward_tokens, s2_logits)
    return modes[mode]
