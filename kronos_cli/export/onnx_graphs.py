"""The forecasting program as ONNX graphs for ONNX Runtime: encode, the predictor's step, the s2 head, decode.

Four graphs, each a view of the library's own modules (no second copy of the model): the tokenizer's encode
(normalised bars -> s1, s2 ids), the predictor's step (tokens appended to a key/value cache given as an input
and returned grown: the window's prefill with an empty cache and every one-token step alike, as
`engine.forward_tokens`), the s2 logits of a drawn s1 (`engine.s2_logits`) and the tokenizer's decode (ids ->
normalised bars). Batch, sequence and cache lengths are dynamic. The sampling loop, normalisation and the
decoding windows live in `onnx_driver.py`, which is copied beside the graphs and needs only numpy and
onnxruntime. Exported with torch.onnx's dynamo exporter (`torch.export`, then onnxscript's translation).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_path
from kronos_cli.export import onnx_driver
from kronos_cli.market.bars import EPS
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

OPSET = 18  # the first with BitwiseAnd (the tokenizer unpacks ids bit by bit); onnxruntime runs it since 1.14
ONNX_DIR = "onnx"
EXTRA = "pip install 'kronos-cli[onnx]'"
NEEDS = ("onnx", "onnxscript", "onnxruntime")  # the exporter, its translation library, the runtime that verifies


def require_onnx() -> None:
    """A one-line error naming the extra when a package the onnx format needs is missing."""
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise KronosError(
            f"formats: onnx needs {' and '.join(missing)}, not installed here; install them with {EXTRA}",
            setting="formats",
        )


class GraphKV:
    """A layer's cache inside a graph (a `layers.KVSlot`): the past keys and values (B, H, P, hd) come in as
    tensors, appending concatenates, and the grown ones are read back as the graph's outputs."""

    def __init__(self, k: Tensor, v: Tensor):
        self.k, self.v = k, v

    @property
    def position(self) -> int:
        return self.k.shape[-2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.k, self.v = torch.cat([self.k, k], -2), torch.cat([self.v, v], -2)
        return self.k, self.v

    def attention(self, q: Tensor) -> Tensor:
        """Queries of the last T positions (B, H, T, hd), each over the cached keys up to its own -> (B, T, d).
        One mask for every length: the graph has no branch on the dynamic sizes."""
        n, t = self.k.shape[-2], q.shape[-2]
        rows = torch.arange(t, device=q.device)[:, None] + (n - t)
        mask = torch.arange(n, device=q.device)[None, :] <= rows  # (T, N)
        out = nn.functional.scaled_dot_product_attention(q, self.k, self.v, attn_mask=mask)  # (B, H, T, hd)
        b, h, _, hd = out.shape
        return out.transpose(1, 2).reshape(b, t, h * hd)


class EncodeGraph(nn.Module):
    """x (B, T, 6) normalised bars -> s1, s2 ids (B, T)."""

    def __init__(self, tok: KronosTokenizer):
        super().__init__()
        self.tok = tok

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s1, s2 = self.tok.encode(x, half=True)
        return s1, s2


class DecodeGraph(nn.Module):
    """s1, s2 ids (B, T) -> bars (B, T, 6), normalised."""

    def __init__(self, tok: KronosTokenizer):
        super().__init__()
        self.tok = tok

    def forward(self, s1: Tensor, s2: Tensor) -> Tensor:
        return self.tok.decode([s1, s2], half=True)


class StepGraph(nn.Module):
    """`engine.forward_tokens` with the cache as tensors: ids (B, T), stamps (B, T, 5), past (L, 2, B, H, P, hd)
    and past_dep (2, B, Hd, P, hd) -> the next s1 logits (B, V1), the last hidden state (B, 1, d) and the caches
    grown by T positions."""

    def __init__(self, model: Kronos):
        super().__init__()
        self.model = model

    def forward(self, s1: Tensor, s2: Tensor, stamps: Tensor, past: Tensor, past_dep: Tensor):
        slots = [GraphKV(layer[0], layer[1]) for layer in past.unbind(0)]
        h = self.model.hidden(s1, s2, stamps, kv=slots)  # (B, T, d)
        dep = GraphKV(past_dep[0], past_dep[1])
        dep.append(*self.model.dep_layer.cross_attn.project_kv(h))
        h_last = h[:, -1:]  # (B, 1, d)
        present = torch.stack([torch.stack([s.k, s.v]) for s in slots])
        return self.model.head.proj_s1(h_last[:, 0]), h_last, present, torch.stack([dep.k, dep.v])


class S2Graph(nn.Module):
    """`engine.s2_logits`: the drawn s1 (B,), the last hidden state (B, 1, d) and the dependency cache
    (2, B, Hd, N, hd) -> the s2 logits (B, V2)."""

    def __init__(self, model: Kronos):
        super().__init__()
        self.model = model

    def forward(self, s1_next: Tensor, h_last: Tensor, dep: Tensor) -> Tensor:
        query = self.model.embedding.emb_s1(s1_next)[:, None]  # (B, 1, d)
        x = self.model.dep_layer.next_token(h_last, query, GraphKV(dep[0], dep[1]))
        return self.model.head.proj_s2(x[:, 0])


def _export(module: nn.Module, args: tuple, path: Path, names: tuple[list[str], list[str]], dims: dict) -> None:
    # lazy: torch.onnx's dynamo exporter imports onnxscript, an optional extra
    import torch.onnx  # lazy: see above

    # the exporter warns of torchvision's operators and of axis names it merges: nothing about this program
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                module.eval(),
                args,
                dynamo=True,
                opset_version=OPSET,
                input_names=names[0],
                output_names=names[1],
                dynamic_shapes=dims,
                external_data=False,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    program.save(str(path))


def _examples(tok: KronosTokenizer, model: Kronos) -> dict[str, tuple]:
    """Inputs of each graph with sizes of at least 2 (torch.export specialises sizes 0 and 1), each its own
    tensor (one tensor passed twice is traced as one input)."""
    c, dep_heads = model.config, model.dep_layer.cross_attn.n_heads
    b, t, p = 2, 3, 4

    def ids() -> Tensor:
        return torch.zeros(b, t, dtype=torch.long)

    past = torch.zeros(c.n_layers, 2, b, c.n_heads, p, c.d_model // c.n_heads)
    dep = torch.zeros(2, b, dep_heads, p, c.d_model // dep_heads)
    return {
        "encode": (torch.zeros(b, t, tok.config.d_in),),
        "step": (ids(), ids(), torch.zeros(b, t, 5, dtype=torch.long), past, dep),
        "s2": (torch.zeros(b, dtype=torch.long), torch.zeros(b, 1, c.d_model), dep),
        "decode": (ids(), ids()),
    }


def _write_graphs(tok: KronosTokenizer, model: Kronos, out: Path) -> None:
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=1)
    past = torch.export.Dim("past", min=0)
    ex = _examples(tok, model)
    _export(EncodeGraph(tok), ex["encode"], out / "encode.onnx", (["x"], ["s1", "s2"]), {"x": {0: batch, 1: seq}})
    bt = {0: batch, 1: seq}
    step_dims = {"s1": bt, "s2": bt, "stamps": bt, "past": {2: batch, 4: past}, "past_dep": {1: batch, 3: past}}
    step_names = (["s1", "s2", "stamps", "past", "past_dep"], ["logits_s1", "h_last", "present", "present_dep"])
    _export(StepGraph(model), ex["step"], out / "step.onnx", step_names, step_dims)
    s2_dims = {"s1_next": {0: batch}, "h_last": {0: batch}, "dep": {1: batch, 3: past}}
    _export(S2Graph(model), ex["s2"], out / "s2.onnx", (["s1_next", "h_last", "dep"], ["logits_s2"]), s2_dims)
    _export(DecodeGraph(tok), ex["decode"], out / "decode.onnx", (["s1", "s2"], ["bars"]), {"s1": bt, "s2": bt})


def write_onnx(tok: KronosTokenizer, model: Kronos, out: Path, max_context: int, clip: float) -> Path:
    """The four graphs, `program.json` (sizes, context, clip, opset) and the driver, as one directory: written
    beside `out` and renamed into place, so a reader never sees part of it."""
    require_onnx()
    c, dep_heads = model.config, model.dep_layer.cross_attn.n_heads
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _write_graphs(tok.eval(), model.eval(), partial)
    program = {
        "format": "kronos-onnx",
        "opset": OPSET,
        "exporter": f"torch.onnx (dynamo) {torch.__version__}",
        "max_context": max_context,
        "clip": clip,
        "eps": EPS,
        "n_layers": c.n_layers,
        "n_heads": c.n_heads,
        "head_dim": c.d_model // c.n_heads,
        "dep_heads": dep_heads,
        "dep_head_dim": c.d_model // dep_heads,
        "d_model": c.d_model,
        "vocab_s1": 2**c.s1_bits,
        "vocab_s2": 2**c.s2_bits,
        "graphs": {name: f"{name}.onnx" for name in ("encode", "step", "s2", "decode")},
    }
    with atomic_path(partial / onnx_driver.PROGRAM) as tmp:
        tmp.write_text(json.dumps(program, indent=2))
    shutil.copyfile(onnx_driver.__file__, partial / onnx_driver.DRIVER)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out
