"""Writers of the Hub layout and the compiled graph (int8 and int4: `quantized`; cards and upload: `hub`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from kronos_cli.core.io import atomic_path
from kronos_cli.model.engine import decode_windows, greedy, reference_step
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

COMPILED_NAME = "kronos_forecast.pt2"


def write_hub(tok: KronosTokenizer, model: Kronos, out: Path, data: dict[str, Any] | None = None) -> dict[str, Path]:
    """The two checkpoint directories in the released layout (their model cards: `hub.write_cards`); the data
    conventions go into config.json's `kronos_cli` block, which the reference ignores."""
    dirs = {"tokenizer": out / "tokenizer", "model": out / "model"}
    tok.save_pretrained(dirs["tokenizer"], data)
    model.save_pretrained(dirs["model"], data)
    return dirs


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
            n1, n2 = reference_step(self.model, s1[:, start:], s2[:, start:], stamps[:, start:cur], greedy)
            s1, s2 = torch.cat([s1, n1[:, None]], 1), torch.cat([s2, n2[:, None]], 1)
        return decode_windows(self.tok, s1, s2, hist, self.max_context)


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
