"""The one-token decode step compiled by torch.compile, paid for once per machine (`forecast.compile`).

The compiled step is the engine's own step (`engine.forward_tokens`, `engine.s2_logits`) and the two draws it
feeds (`sampling.choose`), traced by dynamo as one graph over another layout of the same weights
(`static.static_layout`: plain products, a matrix-vector sweep for one series, instead of the batch-invariant
tiles; rotary tables read at a position held in a tensor) and key/value caches at a fixed capacity
(`static.StaticKV`), so every step of a run has one shape and compiles once. Rows are padded to a bucket (1, 2, 4,
..., 256, then multiples of 256) and capacities to a power of two, so that few shapes are compiled; the buffers of
a shape are kept and reused, and on the CPU its graph is called without dynamo after the first step
(`graphcall.py`). The draws' random numbers are drawn before the graph from the sampler's generators, in the order
the eager step draws them. Inductor's FX graph cache keeps the compiled code under `compile_cache_dir()`
(~/.cache/kronos/compile, or $KRONOS_COMPILE_CACHE): a second process loads it instead of compiling.

On the CPU the attention reads only the cache slots its query sees, their count read from the position inside the
graph (`StaticKV.sliced`), not the padded capacity.

Measured on the project's 2-core CPU, Kronos-small, one series (benchmarks/bench_forecast.py): at lookback 96 the
eager step (tiles) 11-12.5 ms, the compiled one 2.7-3.0 ms, 1.15-1.27x torch's matrix-vector sweep over the same
weights (2.1-2.4 ms); at lookback 384 3.7-3.9 ms, 1.43-1.47x, where the step's own bytes (its products' weights and
the 14.6 MB of keys and values its query sees) take 1.11-1.17x the sweep's time when swept alone: the step is
1.2-1.3x that floor at both lookbacks. Compiling takes 21-25 s in a fresh cache directory and 4-5 s from a warm
one. Of the compiled step's time the products take about what the sweep does; the rest is the attention over the
cache, the two draws (0.1 ms in the graph, and 35 us to draw their noise), and the glue of about 40 small kernels.

What it changes: the products, the attention over a fixed capacity and the draws' kernels round differently from
the eager step (logits agree to 1e-5; tokens agree where no two candidates are that close, see
tests/model/test_compiled.py); the nucleus is found by its last token's logit (the same tokens unless that logit is
tied with another's, see `sampling._filter_uniform`); and a row's bits depend on its bucket: the compiled step is
not batch-invariant, so `decode_plan` keeps it off where invariance is required (the server's dynamic batching).
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from kronos_cli.core.errors import KronosError
from kronos_cli.model.decode import DecodeWeights
from kronos_cli.model.graphcall import GraphCapture
from kronos_cli.model.sampling import RowSampler, choose
from kronos_cli.model.static import StaticKV, StepInputs, rule_key, static_layout

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
PAYBACK = {"cpu": Payback(0.007, 25.0, 5.0), "cuda": Payback(0.0015, 60.0, 10.0)}
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


@dataclass
class _Buffers:
    """The static caches of one shape (bucket rows x capacity), reused by every call of that shape."""

    layers: list[StaticKV]
    dep: StaticKV
    pos: Tensor


Step = Callable[..., Tensor]
RESULTS = 4  # what a compiled step returns: the s1 and s2 drawn, the s1 and s2 logits


class CompiledDecode:
    """The engine's decode step and the draws it feeds, of one model, compiled for the shapes a run uses.

    `wrap` turns a prefilled cache into the static one (rows padded to their bucket); `advance` takes the last
    tokens and returns the next. On the CPU each shape's graph is called without dynamo after its first call
    (`graphcall.py`): its inputs are the same tensors at every step (static caches and `StepInputs`, the layout of
    the same weights). Not shared between threads (its buffers are reused)."""

    def __init__(self, mode: str, forward_tokens: Step, s2_logits: Step):
        log.info("decode step compiled by torch.compile (mode %s), its code kept in %s", mode, use_compile_cache())
        self.mode = mode

        def advance(model, cache, s1, s2, stamp, weights, noise, rule):
            cache = type(cache)(cache.layers, cache.dep)  # the step's own: its h_last is no side effect
            logits = forward_tokens(model, cache, s1, s2, stamp, weights)
            cache.layers[0].pos.add_(1)  # every layer's, shared: the dependency layer's query sees the new key
            s1_next = choose(logits, noise[0], rule, threshold=True)
            logits_s2 = s2_logits(model, cache, s1_next, weights)
            return s1_next, choose(logits_s2, noise[1], rule, threshold=True), logits, logits_s2

        # On the CPU: inductor through `GraphCapture` (its graphs then called without dynamo), the graph's glue in C++
        # (0.15-0.3 ms less a step) and loops under 8192 elements on one thread (the draws'; 1-2% of a step). CUDA
        # graphs keep torch.compile's own mode and dynamo's calls (neither change has run on a GPU here).
        self._direct = mode == COMPILE_MODES["cpu"]
        self._capture = GraphCapture({"cpp_wrapper": True, "cpp.min_chunk_size": 8192})
        if self._direct:
            self._advance = torch.compile(advance, backend=self._capture, dynamic=False)
        else:
            self._advance = torch.compile(advance, mode=mode, dynamic=False)
        self._buffers: dict[tuple, _Buffers] = {}
        self._inputs: dict[tuple, StepInputs] = {}  # per shape and sampling rule, for the current layout
        self._layout: tuple[DecodeWeights, DecodeWeights] | None = None  # the last weights and their layout
        self.rows, self._shape = 0, ()

    def _tracing(self):
        """Dynamo's settings for a call it may trace: on the CPU the count of seen slots (`StaticKV.sliced`) is
        read from the position tensor inside the graph rather than breaking it."""
        return torch._dynamo.config.patch(capture_scalar_outputs=True) if self._direct else contextlib.nullcontext()

    def layout(self, weights: DecodeWeights) -> DecodeWeights:
        if self._layout is None or self._layout[0] is not weights:
            self._layout = (weights, static_layout(weights))
            self._inputs = {}  # their bound calls read the old layout's tensors
        return self._layout[1]

    def _buffers_for(self, cache, rows: int, capacity: int) -> tuple[tuple, _Buffers]:
        first = cache.layers[0].k
        key = (rows, capacity, first.dtype, first.device, len(cache.layers), first.shape[1], cache.dep.k.shape[1])
        found = self._buffers.get(key)
        if found is None:
            pos = torch.zeros((), dtype=torch.long, device=first.device)

            def slot(like: Tensor, causal: bool) -> StaticKV:
                shape = (rows, like.shape[1], capacity, like.shape[3])
                return StaticKV(like.new_zeros(shape), like.new_zeros(shape), pos, causal, sliced=self._direct)

            found = _Buffers([slot(s.k, True) for s in cache.layers], slot(cache.dep.k, False), pos)
            if self.mode == "reduce-overhead":  # CUDA graphs replay fixed addresses: these buffers are them
                for s in (*found.layers, found.dep):
                    torch._dynamo.mark_static_address(s.k)
                    torch._dynamo.mark_static_address(s.v)
                torch._dynamo.mark_static_address(pos)
            self._buffers[key] = found
        return key, found

    def wrap(self, cache):
        """The prefilled `cache` (an `engine.KVCache` of plain `LayerKV`s) copied into the static buffers of its
        bucket; returns a `KVCache` over them."""
        rows, length = cache.layers[0].k.shape[0], cache.layers[0].length
        capacity = max(16, 1 << (cache.layers[0].k.shape[2] - 1).bit_length())
        self._shape, buf = self._buffers_for(cache, bucket(rows), capacity)
        for old, new in zip((*cache.layers, cache.dep), (*buf.layers, buf.dep)):
            new.k.zero_(), new.v.zero_()
            new.k[:rows, :, :length], new.v[:rows, :, :length] = old.k[:, :, :length], old.v[:, :, :length]
        buf.pos.fill_(length)
        self.rows = rows
        return type(cache)(buf.layers, buf.dep)

    def _inputs_for(self, model, stamp: Tensor, draw: RowSampler) -> StepInputs:
        key = (self._shape, rule_key(draw.rule(stamp.device, bucket(self.rows))), draw.random)
        found = self._inputs.get(key)
        if found is None:
            vocab = (2**model.config.s1_bits, 2**model.config.s2_bits)
            found = self._inputs[key] = StepInputs.allocate(bucket(self.rows), stamp, vocab, draw)
        return found

    def advance(self, model, cache, s1: Tensor, s2: Tensor, stamp: Tensor, weights: DecodeWeights, draw: RowSampler):
        """One decode step on a wrapped cache and the two draws it feeds, in one graph: the tokens (rows,) of the
        last position and their stamps (rows, 5) appended, the next s1 drawn from its logits and the s2 from its
        own. Returns (s1, s2, s1 logits, s2 logits). The draws' noise comes from `draw`'s generators before the
        graph runs, in the order the eager step consumes it (s1's, then s2's): the same random numbers."""
        layout = self.layout(weights)
        inputs = self._inputs_for(model, stamp, draw)
        inputs.load(s1, s2, stamp, draw)
        if inputs.call is not None:
            out = inputs.call()
        else:
            args = (model, cache, inputs.s1, inputs.s2, inputs.stamp, layout, inputs.noise, inputs.rule)
            with self._tracing():
                out = self._advance(*args)
            if self._direct and not inputs.tried:
                inputs.call, inputs.tried = self._capture.call_again(args, RESULTS), True
                log.debug("decode step graph called %s", "directly" if inputs.call else "through dynamo")
        return tuple(t[: self.rows] for t in out[:RESULTS])


_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {mode: CompiledDecode}


def compiled_for(model: torch.nn.Module, mode: str, forward_tokens: Step, s2_logits: Step) -> CompiledDecode:
    """The compiled step of `model` in `mode`, made once per model (dynamo's guards then match every later call);
    kept as long as the model is."""
    modes = _compiled.setdefault(model, {})
    if mode not in modes:
        modes[mode] = CompiledDecode(mode, forward_tokens, s2_logits)
    return modes[mode]
