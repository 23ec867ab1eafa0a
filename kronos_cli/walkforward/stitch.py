"""The folds' test periods stitched into one out-of-sample record, scored as `kronos evaluate` scores a split.

Each fold's windows are found, by (symbol, signal time), among the test windows of a dataset over the whole data
(`span_config`), whose later bars give every window its label, even the last ones of a fold. The record is scored
with the evaluate machinery (the refitted models as one forecaster, "fine-tuned"; the base model never refitted;
the baselines; Diebold-Mariano tests over the whole span), and the same scores per fold, whose wins against the
base model and the last close are counted with a sign test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from kronos_cli.config import Config
from kronos_cli.data.labels import Realised, realised
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.windows import Origins, origin_keys
from kronos_cli.evaluate.baselines import baselines, lookback_returns
from kronos_cli.evaluate.scores import ModelScores, score
from kronos_cli.forecast.signals import signal_table
from kronos_cli.forecast.windows import WindowForecasts
from kronos_cli.metrics.probabilistic import Ensemble
from kronos_cli.runtime.split_forecasts import SplitForecasts, split_windows
from kronos_cli.walkforward.folds import FoldForecasts

log = logging.getLogger(__name__)
MODEL = "fine-tuned"  # the label `kronos evaluate` gives a run's trained model: here each fold's own
LAST_CLOSE = "last close"


@dataclass
class Stitched:
    """The record: the refitted models' forecasts as one split (its windows in the span dataset's order), the base
    model's forecasts of the same windows, and the fold of each window."""

    sf: SplitForecasts
    base: WindowForecasts
    fold_of: np.ndarray  # (N,) fold index

    def signals(self, names: list[str]) -> pd.DataFrame:
        """datetime, instrument, the signals, the label and the fold (1-based) of each window, by day and symbol."""
        table = signal_table(self.sf.forecasts, self.sf.origin_ns, self.sf.names, names)
        table["label"], table["fold"] = self.sf.real.label, self.fold_of + 1
        return table.sort_values(["datetime", "instrument"], kind="stable").reset_index(drop=True)

    def days(self, fold: int | None = None) -> pd.DatetimeIndex:
        t = pd.to_datetime(self.sf.origin_ns if fold is None else self.sf.origin_ns[self.fold_of == fold])
        return pd.DatetimeIndex(t).unique().sort_values()


def stitch(span_cfg: Config, arrays: DatasetArrays, parts: list[FoldForecasts]) -> Stitched:
    """The folds' windows in the span dataset, in its order, with their labels from its later bars."""
    origins = split_windows(span_cfg, arrays, "test")
    names, ns = origin_keys(arrays, origins)
    index = pd.MultiIndex.from_arrays([names, ns])
    at, keep = [], []
    for p in parts:
        found = index.get_indexer(pd.MultiIndex.from_arrays([np.asarray(p.names, dtype=str), p.origin_ns]))
        if (found < 0).any():  # a window one dataset cut and the other did not (a gap after the fold's end)
            log.warning("%s: %d windows are not in the whole data's record; left out", p.fold.name, (found < 0).sum())
        at.append(found[found >= 0])
        keep.append(found >= 0)
    pos = np.concatenate(at)
    assert len(np.unique(pos)) == len(pos), "test periods overlap"
    order = np.argsort(pos, kind="stable")
    fold_of = np.concatenate([np.full(int(k.sum()), p.fold.index) for p, k in zip(parts, keep)])[order]
    model = WindowForecasts.concat([p.model.subset(np.flatnonzero(k)) for p, k in zip(parts, keep)]).subset(order)
    base = WindowForecasts.concat([p.base.subset(np.flatnonzero(k)) for p, k in zip(parts, keep)]).subset(order)
    mine = origins.subset(pos[order])
    d = span_cfg.data
    real = realised(arrays, mine, d.predict_window, span_cfg.backtest.deal_price)
    sf = SplitForecasts(mine, names[pos[order]], ns[pos[order]], model, real, "")
    return Stitched(sf, base, fold_of)


def _subset(real: Realised, mask: np.ndarray) -> Realised:
    return Realised(real.label[mask], real.path[mask], real.convention)


def score_record(
    cfg: Config,
    arrays: DatasetArrays,
    st: Stitched,
    base_label: str,
    mask: np.ndarray | None = None,
    headline: bool = False,
) -> dict[str, ModelScores]:
    """The refitted models, the base model and the baselines scored on the record's windows (or those of `mask`);
    `headline`: the headline scores alone (`evaluate.scores.score`), all a fold's row and its wins need."""
    mask = np.ones(len(st.fold_of), dtype=bool) if mask is None else mask
    real, pred = _subset(st.sf.real, mask), cfg.data.predict_window
    times = pd.to_datetime(st.sf.origin_ns[mask])
    common = dict(
        obs=real.path, trade_label=real.label, names=st.sf.names[mask], times=times, predict=pred, headline=headline
    )
    idx = np.flatnonzero(mask)
    out = {
        MODEL: score(
            MODEL, "model", "each fold's refitted model", Ensemble(st.sf.forecasts.subset(idx).return_paths()), **common
        ),
        base_label: score(
            base_label,
            "model",
            f"{cfg.model.tokenizer}, {cfg.model.predictor}",
            Ensemble(st.base.subset(idx).return_paths()),
            **common,
        ),
    }
    returns = lookback_returns(
        arrays, Origins(st.sf.origins.rows[idx], st.sf.origins.symbols[idx]), cfg.data.lookback_window
    )
    for name, predictive in baselines(returns, pred, cfg.seed).items():
        out[name] = score(name, "baseline", "lookback", predictive, **common)
    return out


WIN_METRICS = ("MAE", "CRPS")  # a fold is won on the point error and on the distribution's


def fold_wins(per_fold: list[dict[str, ModelScores]], base_label: str) -> list[dict]:
    """In how many folds the refitted model's MAE and CRPS are below the base model's and the last close's, each
    with a one-sided sign test (scipy's binomtest: under no difference, a fold is a coin flip)."""
    out = []
    for rival in (base_label, LAST_CLOSE):
        for metric in WIN_METRICS:
            wins = [bool(f[MODEL].overall[metric] < f[rival].overall[metric]) for f in per_fold]
            n, k = len(wins), int(sum(wins))
            p = binomtest(k, n, 0.5, alternative="greater").pvalue if n else float("nan")
            share = k / n if n else float("nan")
            out.append(
                {
                    "against": rival,
                    "metric": metric,
                    "wins": k,
                    "folds": n,
                    "share": share,
                    "p_value": float(p),
                    "by_fold": wins,
                }
            )
    return out
