"""`kronos evaluate` on the default synthetic market: what the baselines, the scores and the significance tests
add to the forecasting they follow (CPU).

Target: scoring (four baselines, every score of every model, the Diebold-Mariano tests) adds under 10% to the
forecast time. Two models are compared (a tiny "fine-tuned" pair saved where a run keeps its best models, and the
initial weights of its presets), each forecasting every test window once with the config's sample count; the
ratio is measured in the same run. A second run shows the window-keyed cache: nothing is forecast again.

    python benchmarks/bench_evaluate.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from _common import SPLITS  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli import config
from kronos_cli.data.prep import prepare
from kronos_cli.data.synthetic import write_market
from kronos_cli.evaluate.run import run_evaluate
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.records.runs import best_model_dir


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        market = write_market(tmp / "market")
        cfg = config.load(
            None,
            [
                f"data.provider_uri={market}",
                f"data.dataset_path={tmp / 'ds'}",
                f"output_dir={tmp / 'out'}",
                "model.tokenizer=preset:tokenizer-tiny",
                "model.predictor=preset:tiny",
                *SPLITS,
            ],
        )
        prepare(cfg)
        torch.manual_seed(1)  # other weights than the initial ones, in the run's best_model layout
        KronosTokenizer.from_preset("tokenizer-tiny").save_pretrained(best_model_dir(cfg, "tokenizer"))
        Kronos.from_preset("tiny").save_pretrained(best_model_dir(cfg, "predictor"))
        result = run_evaluate(cfg, device="cpu")
        forecast, scoring = result.timings["forecast_s"], result.timings["score_s"]
        models = sum(m.kind == "model" for m in result.models)
        baselines = len(result.models) - models
        print(
            f"kronos evaluate, default synthetic market, {result.windows:,} test windows x "
            f"{cfg.backtest.sample_count} samples, {models} models: forecasting {forecast:.1f} s, "
            f"{baselines} baselines + scores + {len(result.comparisons)} significance tests {scoring:.2f} s = "
            f"{scoring / forecast:.1%} of the forecast time (target < 10%)"
        )
        t = time.perf_counter()
        again = run_evaluate(cfg, device="cpu")
        print(
            f"second run (window-keyed cache): {time.perf_counter() - t:.1f} s, forecasting "
            f"{again.timings['forecast_s']:.1f} s ({again.timings['forecast_s'] / forecast:.2f} of the first run's)"
        )


if __name__ == "__main__":
    main()
