"""`kronos demo`: the whole job on the embedded default, a synthetic market and tiny models, on the CPU.

Writes the synthetic Qlib market, prepares it with `configs/demo.yaml`, fine-tunes the tokenizer and the
predictor from scratch, then backtests the fine-tuned models on the test split with Qlib.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from kronos_cli import config
from kronos_cli.configs import shipped

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    out: Path
    dataset: dict
    tokenizer: dict
    predictor: dict
    backtest: dict


def demo_config(out: Path, overrides: list[str] = ()) -> config.Config:
    out = out.resolve()
    return config.load(shipped("demo.yaml"), [f"data.provider_uri={out / 'market'}",
                                              f"data.dataset_path={out / 'data' / 'processed_datasets'}",
                                              f"output_dir={out / 'outputs'}", *overrides])


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
    from kronos_cli.backtest.run import run_backtest

    backtest = run_backtest(cfg, device="cpu")  # the two best_models just trained
    return DemoResult(out, manifest, tok, pred, backtest)
