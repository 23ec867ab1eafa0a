"""`kronos backtest` end to end on the default synthetic market with tiny random models (CPU, 2 cores).

Target: under 2 minutes. Also prints forecast windows/s of the cached engine against the reference's
full-recompute path on the same test windows (first 256), measured in the same run.

    python benchmarks/bench_backtest.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _common import SPLITS  # noqa: E402 (benchmarks run as scripts from their folder)

from kronos_cli import config
from kronos_cli.backtest.run import run_backtest
from kronos_cli.data.dataset import WindowDataset
from kronos_cli.data.prep import prepare
from kronos_cli.data.synthetic import write_market
from kronos_cli.forecast import KronosPredictor
from kronos_cli.model import Kronos, KronosTokenizer


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        market = write_market(tmp / "market")
        cfg = config.load(
            None,
            [f"data.provider_uri={market}", f"data.dataset_path={tmp / 'ds'}", f"output_dir={tmp / 'out'}", *SPLITS],
        )
        prepare(cfg)
        tok, model = KronosTokenizer.from_preset("tokenizer-tiny"), Kronos.from_preset("tiny")
        tok.save_pretrained(tmp / "tok")
        model.save_pretrained(tmp / "model")
        t = time.perf_counter()
        result = run_backtest(cfg, str(tmp / "tok"), str(tmp / "model"), "cpu")
        elapsed = time.perf_counter() - t
        print(
            f"kronos backtest, default synthetic market, tiny preset, {result.signal_days:,} test signal days x "
            f"{cfg.backtest.sample_count} samples, 4 Qlib backtests: {elapsed:.1f} s "
            f"({elapsed / 120:.2f} of the 120 s target)"
        )

        ds = WindowDataset(cfg.data.dataset_path, "test")
        x, stamp = ds.__getitems__(np.arange(256))
        look, pred = ds.lookback, cfg.data.predict_window
        predictor = KronosPredictor(model, tok, device="cpu")
        rates = {}
        for use_cache in (True, False):
            t = time.perf_counter()
            predictor.forecast_normalised(
                x[:, :look],
                stamp[:, :look],
                stamp[:, look : look + pred],
                pred,
                T=0.6,
                top_p=0.9,
                sample_count=5,
                seed=0,
                use_cache=use_cache,
            )
            rates[use_cache] = 256 / (time.perf_counter() - t)
        print(
            f"tiny preset, 256 windows x 5 samples: cached {rates[True]:.0f} windows/s, full recompute "
            f"{rates[False]:.0f} windows/s, {rates[True] / rates[False]:.1f}x (Kronos-small-sized: see "
            f"bench_forecast.py)"
        )


if __name__ == "__main__":
    main()
