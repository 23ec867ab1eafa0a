"""`kronos demo`: the whole job on the embedded default, a synthetic market and tiny models, on the CPU.

Writes the synthetic Qlib market, prepares it with `configs/demo.yaml`, fine-tunes the tokenizer and the
predictor from scratch, then forecasts held-out test windows and scores them against a naive forecast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kronos_cli import config
from kronos_cli.configs import shipped

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    out: Path
    dataset: dict
    tokenizer: dict
    predictor: dict
    evaluation: dict


def demo_config(out: Path, overrides: list[str] = ()) -> config.Config:
    out = out.resolve()
    return config.load(shipped("demo.yaml"), [f"data.provider_uri={out / 'market'}",
                                              f"data.dataset_path={out / 'data' / 'processed_datasets'}",
                                              f"output_dir={out / 'outputs'}", *overrides])


def evaluate(cfg: config.Config, windows: int = 128, seed: int = 0) -> dict:
    """Forecast test windows with the fine-tuned models; MAE of the forecast close against a naive one."""
    import torch

    from kronos_cli.data.dataset import WindowDataset
    from kronos_cli.model import Kronos, KronosPredictor, KronosTokenizer
    from kronos_cli.train.loop import run_dir

    tok = KronosTokenizer.from_pretrained(run_dir(cfg, "tokenizer") / "checkpoints" / "best_model")
    model = Kronos.from_pretrained(run_dir(cfg, "predictor") / "checkpoints" / "best_model")
    predictor = KronosPredictor(model, tok, device="cpu", max_context=cfg.data.max_context, clip=cfg.data.clip)
    ds = WindowDataset(cfg.data.dataset_path, "test")
    pick = np.random.default_rng(seed).choice(len(ds), size=min(windows, len(ds)), replace=False)
    x, stamp = ds.__getitems__(np.sort(pick))
    look, pred = ds.lookback, cfg.data.predict_window
    with torch.no_grad():
        out = predictor.forecast_normalised(x[:, :look], stamp[:, :look], stamp[:, look:look + pred], pred,
                                            T=cfg.backtest.temperature, top_p=cfg.backtest.top_p,
                                            sample_count=cfg.backtest.sample_count, seed=seed)
    close = 3
    truth = x[:, look:look + pred, close]
    model_mae = float(np.abs(out.mean(axis=1)[..., close] - truth).mean())
    naive_mae = float(np.abs(x[:, look - 1:look, close] - truth).mean())
    direction = float((np.sign(out.mean(axis=1)[:, -1, close] - x[:, look - 1, close])
                       == np.sign(truth[:, -1] - x[:, look - 1, close])).mean())
    return {"test_windows": int(len(pick)), "horizon": pred, "mae_close_model": model_mae,
            "mae_close_naive": naive_mae, "directional_accuracy": direction,
            "units": "normalised (z-score of the lookback)"}


def run_demo(out: str | Path, overrides: list[str] = (), observer_factory=None) -> DemoResult:
    from kronos_cli.data.prep import dataset_hash, prepare
    from kronos_cli.data.store import read_manifest
    from kronos_cli.data.synthetic import write_market
    from kronos_cli.train.distributed import Context
    from kronos_cli.train.loop import TrainOptions, train

    out = Path(out).expanduser().resolve()
    cfg = demo_config(out, list(overrides))
    market = Path(cfg.data.provider_uri)
    if not (market / "calendars" / "day.txt").is_file():
        write_market(market)
    try:
        manifest = read_manifest(cfg.data.dataset_path)
        if manifest["config_hash"] != dataset_hash(cfg):
            raise ValueError
        log.info("reusing the prepared dataset at %s", cfg.data.dataset_path)
    except ValueError:  # no dataset yet, or one built from another config
        manifest = prepare(cfg)
    ctx = Context()
    tok = train(cfg, TrainOptions(stage="tokenizer"), ctx, observer_factory() if observer_factory else None)
    pred = train(cfg, TrainOptions(stage="predictor"), ctx, observer_factory() if observer_factory else None)
    evaluation = evaluate(cfg)
    return DemoResult(out, manifest, tok, pred, evaluation)
