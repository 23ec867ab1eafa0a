"""Reload one exported artifact in a fresh process and forecast held-out windows greedily.

`python -m kronos_cli.export.verify KIND PATH INPUTS OUTPUT PRED_LEN MAX_CONTEXT` for the bundle, hf, int8 and int4
formats. The compiled program must run with torch alone, so `kronos export` runs this file as a script with
KIND `compiled`, which makes `kronos_cli` unimportable before anything else is loaded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch


def forecast_compiled(path: str, x: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    sys.modules["kronos_cli"] = None  # type: ignore[assignment]  # the program must not need kronos-cli
    program = torch.export.load(path).module()
    with torch.no_grad():
        return program(torch.from_numpy(x), torch.from_numpy(stamps).long()).numpy()


def fresh_process(args: list[str], output: Path, what: str) -> np.ndarray:
    """Run `args` (a check that writes its forecasts to `output`) in a new process and read them back; a failure is
    a RuntimeError naming `what` and the process's last line of stderr."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode
        raise RuntimeError(f"{what} in a fresh process failed: {last}")
    got = np.load(output, allow_pickle=False)
    output.unlink()
    return got


def forecast_with_library(
    kind: str, path: str, x: np.ndarray, stamps: np.ndarray, pred_len: int, max_context: int
) -> np.ndarray:
    # lazy: this module also runs where kronos_cli must not be importable (the compiled check)
    from kronos_cli.export.quantized import load_quantized  # lazy: see above
    from kronos_cli.forecast.predictor import KronosPredictor  # lazy: see above
    from kronos_cli.model.sampling import GREEDY  # lazy: see above

    if kind == "bundle":
        forecaster = KronosPredictor.from_bundle(path, device="cpu")
    elif kind == "hf":
        forecaster = KronosPredictor.from_pretrained(
            f"{path}/tokenizer", f"{path}/model", device="cpu", max_context=max_context
        )
    else:
        tok, model, conv = load_quantized(path, kind)
        forecaster = KronosPredictor(model, tok, device="cpu", max_context=conv.max_context, clip=conv.clip)
    look = x.shape[1]
    return forecaster.forecast_normalised(x, stamps[:, :look], stamps[:, look:], pred_len, GREEDY)[:, 0]


def main(argv: list[str]) -> None:
    kind, path, inputs, output, pred_len, max_context = argv
    data = np.load(inputs, allow_pickle=False)
    x, stamps = data["x"], data["stamps"]
    if kind == "compiled":
        out = forecast_compiled(path, x, stamps)
    else:
        out = forecast_with_library(kind, path, x, stamps, int(pred_len), int(max_context))
    np.save(output, out.astype(np.float32), allow_pickle=False)


if __name__ == "__main__":
    main(sys.argv[1:])
