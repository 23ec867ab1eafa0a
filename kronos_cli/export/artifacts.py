"""Writers and loaders of the four artifact formats: bundle, hf (Hub layout), int8, compiled."""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi
from torch import nn

from kronos_cli.errors import KronosError
from kronos_cli.io import atomic_path, write_text
from kronos_cli.model.bundle import bundle_parts, payload, read_payload
from kronos_cli.model.checkpoint import check_shapes, expected_shapes, tensor_shapes
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

INT8_NAME = "kronos_int8.pth"
COMPILED_NAME = "kronos_forecast.pt2"
INT8_FORMAT = "kronos-int8"


def write_hub(
    tok: KronosTokenizer, model: Kronos, out: Path, summary: dict[str, Any], data: dict[str, Any] | None = None
) -> dict[str, Path]:
    """The two checkpoint directories in the released layout, each with a model card; the data conventions go
    into config.json's `kronos_cli` block, which the reference ignores."""
    dirs = {"tokenizer": out / "tokenizer", "model": out / "model"}
    tok.save_pretrained(dirs["tokenizer"], data)
    model.save_pretrained(dirs["model"], data)
    for name, d in dirs.items():
        cfg = json.loads((d / "config.json").read_text())
        lines = [
            "---",
            "library_name: kronos-cli",
            "tags: [kronos, time-series, finance, forecasting]",
            "---",
            "",
            f"# Fine-tuned Kronos {name}",
            "",
            "Written by kronos-cli in the released checkpoint layout (`config.json`, `model.safetensors`); "
            "it loads with `from_pretrained` in kronos-cli and in the reference implementation "
            "(shiyu-coder/Kronos).",
            "",
            "## Configuration",
            "",
            "```json",
            json.dumps(cfg, indent=2),
            "```",
            "",
        ]
        if summary:
            lines += ["## Training summary", "", "```json", json.dumps(summary, indent=2, default=str), "```", ""]
        write_text(d / "README.md", "\n".join(lines))
    return dirs


def push_to_hub(folder: Path, repo_id: str, token_env: str = "HF_TOKEN") -> str:
    """Upload the Hub-layout export; the token comes from the environment only."""
    token = os.environ.get(token_env)
    if not token:
        raise KronosError(f"--push-to-hub needs a Hugging Face token in the environment variable {token_env}")
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True)
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="kronos export"))


def quantize(model: Kronos) -> nn.Module:
    """Dynamic int8 with one scale per output channel: a per-tensor scale lets one large row set the step of
    every row, which costs small models most of their precision."""
    spec = {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), spec, dtype=torch.qint8)


def write_int8(tok: KronosTokenizer, model: Kronos, path: Path, data: dict[str, Any]) -> Path:
    """Dynamic int8 quantisation of both models' Linear layers, for CPU inference."""
    content = payload(
        INT8_FORMAT, tok.config, quantize(tok).state_dict(), model.config, quantize(model).state_dict(), data
    )
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return path


def load_int8(path: str | os.PathLike) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """The quantised tokenizer and predictor of an int8 export, and its conventions; its configs are checked
    against their bounds and their claimed sizes against the tensors before either model is built."""
    parts = bundle_parts(read_payload(path, INT8_FORMAT, "int8 export"), path)
    for cls, config, state in parts.members():  # both checked before either is built
        check_shapes(expected_shapes(cls, config), _int8_shapes(state), str(path))
    built = []
    for cls, config, state in parts.members():
        module = quantize(cls(config))
        module.load_state_dict(state)
        built.append(module.eval())
    return built[0], built[1], parts.conventions


_PACKED = "._packed_params._packed_params"  # a dynamically quantised Linear's (weight, bias)


def _int8_shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...] | None]:
    """The float state_dict shapes an int8 one stands for: each quantised Linear's packed weight and bias under
    the Linear's own names, its scale, zero point and dtype left out."""
    linears = {k[: -len(_PACKED)] for k in state if k.endswith(_PACKED)}
    shapes: dict[str, tuple[int, ...] | None] = {}
    for key, value in state.items():
        base, _, leaf = key.rpartition(".")
        if key.endswith(_PACKED):
            linear = key[: -len(_PACKED)]
            weight, bias = value if isinstance(value, tuple) and len(value) == 2 else (None, None)
            found = {f"{linear}.weight": weight, **({f"{linear}.bias": bias} if bias is not None else {})}
        elif key.endswith("._packed_params.dtype") or (base in linears and leaf in ("scale", "zero_point")):
            continue
        else:
            found = {key: value}
        shapes.update(tensor_shapes(found))
    return shapes


class ForecastProgram(nn.Module):
    """Greedy forecasting as one graph: x (B, L, 6) normalised bars, stamps (B, L + P, 5) -> (B, P, 6).

    The reference algorithm unrolled over the P steps (full window each step, a sliding window of max_context),
    so that the exported program needs nothing but torch.
    """

    def __init__(self, tok: KronosTokenizer, model: Kronos, pred_len: int, max_context: int):
        super().__init__()
        self.tok, self.model, self.pred_len, self.max_context = tok, model, pred_len, max_context

    def forward(self, x: torch.Tensor, stamps: torch.Tensor) -> torch.Tensor:
        s1, s2 = self.tok.encode(x, half=True)
        hist = x.shape[1]
        for i in range(self.pred_len):
            cur = hist + i
            start = max(0, cur - self.max_context)
            logits, context = self.model.decode_s1(s1[:, start:], s2[:, start:], stamps[:, start:cur])
            n1 = logits[:, -1].argmax(-1)
            n2 = self.model.decode_s2(context, n1[:, None])[:, -1].argmax(-1)
            s1, s2 = torch.cat([s1, n1[:, None]], 1), torch.cat([s2, n2[:, None]], 1)
        start = max(0, hist + self.pred_len - self.max_context)
        return self.tok.decode([s1[:, start:], s2[:, start:]], half=True)[:, -self.pred_len :]


def write_compiled(
    tok: KronosTokenizer, model: Kronos, path: Path, lookback: int, pred_len: int, max_context: int
) -> Path:
    """A torch.export program with a dynamic batch size (lookback and pred_len are fixed at export)."""
    prog = ForecastProgram(tok.eval(), model.eval(), pred_len, max_context).eval()
    x = torch.zeros(2, lookback, 6)
    stamps = torch.zeros(2, lookback + pred_len, 5, dtype=torch.long)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.no_grad():
        program = torch.export.export(prog, (x, stamps), dynamic_shapes={"x": {0: batch}, "stamps": {0: batch}})
    with atomic_path(path, suffix=".pt2") as tmp:
        torch.export.save(program, str(tmp))
    return path
