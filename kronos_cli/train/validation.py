"""Validation: the loss on the validation windows (every epoch), and the skill that can choose `best_model`
instead (`training.select_by: val_ic | val_crps`): the predictor forecasts
a fixed subset of the validation split's signal days with the KV-cached engine and the backtest's signal
definition, and is scored on what then happened: the mean daily IC of the `mean` signal (on a market of fewer
than 3 symbols a day, where no cross-section exists, its correlation over time with the label), and the CRPS of
the sample paths in return units. The same days, windows and seeds every epoch, so epochs compare fairly.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from kronos_cli.config import Config
from kronos_cli.data.dataset import DatasetArrays, to_tensors
from kronos_cli.data.labels import realised
from kronos_cli.data.windows import Origins, origin_keys
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.forecast.signals import signal_table
from kronos_cli.forecast.spec import ForecastSpec, resolve_spec, sampling_of_config
from kronos_cli.forecast.windows import forecast_windows
from kronos_cli.metrics.ic import ic_table, time_series_ic
from kronos_cli.metrics.probabilistic import Ensemble
from kronos_cli.runtime.distributed import all_reduce_sum
from kronos_cli.runtime.split_forecasts import split_windows
from kronos_cli.train.methods import releasable
from kronos_cli.train.optim import autocast

HIGHER_IS_BETTER = {"val_loss": False, "val_ic": True, "val_crps": False}


class ValidationSkill:
    """Scores a predictor on `training.select_days` validation days spread over the split."""

    def __init__(self, cfg: Config, spec: ForecastSpec, deal_price: str, batch_size: int | str):
        """`spec`: how to forecast (the run's context, clip and sampling, resolved by the recipe); `deal_price`:
        the price the labels are measured at; `batch_size`: windows per forecast batch."""
        self.cfg, self.spec, self.batch_size = cfg, spec, batch_size
        self.arrays = DatasetArrays(cfg.data.dataset_path)
        origins = split_windows(cfg, self.arrays, "val")
        names, origin_ns = origin_keys(self.arrays, origins)
        days = np.unique(origin_ns)
        keep_days = days[np.unique(np.linspace(0, len(days) - 1, min(cfg.training.select_days, len(days))).astype(int))]
        keep = np.isin(origin_ns, keep_days)
        self.origins = Origins(origins.rows[keep], origins.symbols[keep])
        self.names, self.origin_ns = names[keep], origin_ns[keep]
        self.real = realised(self.arrays, self.origins, cfg.data.predict_window, deal_price)

    def score(self, forecaster: KronosPredictor) -> dict[str, float]:
        """{"val_ic": mean daily IC, "val_crps": mean CRPS in return units, "days": scored days}."""
        fc = forecast_windows(forecaster, self.arrays, self.origins, self.spec.sampling, self.batch_size)
        table = signal_table(fc, self.origin_ns, self.names, ["mean"], False).set_index(["datetime", "instrument"])
        label = pd.Series(self.real.label, index=table.index)
        ic = ic_table(table["mean"], label)
        if ic["days"] == 0:  # no day has a cross-section: skill over time instead
            ts = time_series_ic(table["mean"], label, self.cfg.data.predict_window)
            ic = {"IC": ts["corr"], "days": int(len(np.unique(self.origin_ns)))}
        known = np.isfinite(self.real.path)
        paths = fc.return_paths()
        crps = Ensemble(np.where(known[:, None, :], paths, 0.0)).crps(np.where(known, self.real.path, 0.0))
        mean_crps = float(crps[known].mean()) if known.any() else math.nan
        return {"val_ic": ic["IC"], "val_crps": mean_crps, "days": ic["days"]}


def skill_for(cfg: Config, stage: str) -> ValidationSkill | None:
    """The validation skill that picks best_model (`training.select_by`), forecasting as the backtest would: the
    config's context, clip and sampling, with `training.select_samples` paths (at least 2, for the CRPS)."""
    if cfg.training.select_by == "val_loss" or stage != "predictor":
        return None
    sampling = sampling_of_config(cfg, paths=max(2, cfg.training.select_samples))
    spec = resolve_spec(cfg=cfg, sampling=sampling)
    return ValidationSkill(cfg, spec, cfg.backtest.deal_price, cfg.backtest.batch_size)


def better(metric: str, value: float, best: float) -> bool:
    """Whether `value` improves on `best` for `metric` (NaN never does)."""
    if not math.isfinite(value):
        return False
    if not math.isfinite(best):
        return True
    return value > best if HIGHER_IS_BETTER[metric] else value < best


def epoch_scores(run) -> dict[str, float]:
    """The skill of a run's model as it stands ({} without a skill to measure); leaves it in training mode."""
    if run.skill is None:
        return {}
    model = releasable(run.model)  # LoRA adapters merged: the engine reads the plain weights
    forecaster = run.skill.spec.replace(device=str(run.ctx.device)).predictor(model, run.stage.tokenizer)
    try:
        return run.skill.score(forecaster)
    finally:
        run.model.train()


@torch.no_grad()
def validate(run) -> float:
    """Sample-weighted mean validation loss over every rank's windows."""
    ctx = run.ctx
    run.model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=ctx.device)
    for batch in run.data.loader("val"):
        x, stamp = to_tensors(batch, ctx.device)
        with autocast(run.cfg, ctx.device):
            loss = run.stage.val_loss(run.model, x, stamp)
        total += torch.tensor([loss.item() * x.shape[0], x.shape[0]], dtype=torch.float64, device=ctx.device)
    total = all_reduce_sum(total, ctx)
    run.model.train()
    return float(total[0] / max(total[1], 1))
