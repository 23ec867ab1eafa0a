"""Which differences `kronos evaluate` tests, and what they say: Diebold-Mariano tests of every model against
every baseline on each loss (MAE, CRPS, WQL), and of the fine-tuned model against where it started.

A probabilistic model has to beat a probabilistic baseline on the probabilistic scores: the historical-volatility
random walk forecasts a spread of paths with no skill, and on CRPS and WQL it is a far harder opponent than the
last close (a point, whose CRPS is its absolute error). So the headline verdict of each score is the test
against that score's strongest baseline: the one with the lowest loss on the leaderboard.

The losses are per signal time (`scores.py`): averaged over the symbols with a known future at that time (one
series: each window's own loss) and tested over the signal times in order, with Newey-West variance and
predict - 1 lags, because the horizons of neighbouring windows overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kronos_cli.evaluate.scores import LOSSES, ModelScores
from kronos_cli.metrics.significance import diebold_mariano

LEVEL = 0.05  # a difference is significant at p below this


@dataclass
class Comparison:
    a: str
    b: str
    metric: str
    loss_a: float  # mean of the per-signal-time losses both have (MAE and CRPS: return units; WQL: unitless)
    loss_b: float
    statistic: float
    p_value: float
    times: int  # signal times (days or bars) in the test

    @property
    def verdict(self) -> str:
        if not self.p_value < LEVEL:
            return "no significant difference"
        return f"{self.a} better" if self.statistic < 0 else f"{self.b} better"

    @property
    def a_better(self) -> bool:
        return bool(self.p_value < LEVEL and self.statistic < 0)


def dm_test(a: ModelScores, b: ModelScores, metric: str, predict: int) -> Comparison:
    """A Diebold-Mariano test of a against b on `metric`, over the signal times where both have a loss."""
    la, lb = a.losses[metric], b.losses[metric]
    common = la.index.intersection(lb.index)
    la, lb = la[common], lb[common]
    both = np.isfinite(la.to_numpy()) & np.isfinite(lb.to_numpy())
    stat, p = diebold_mariano(la.to_numpy(), lb.to_numpy(), predict)
    means = float(la[both].mean()), float(lb[both].mean())
    return Comparison(a.label, b.label, metric, *means, stat, p, int(both.sum()))


def _distinct(baselines: list[ModelScores], metric: str) -> list[ModelScores]:
    """The baselines whose losses on `metric` differ from an earlier one's: the normal random walk's mean path is
    the last close, so their MAE is one test, not two."""
    out: list[ModelScores] = []
    for b in baselines:
        if not any(b.losses[metric].equals(o.losses[metric]) for o in out):
            out.append(b)
    return out


def compare(scores: list[ModelScores], start: str | None, predict: int) -> list[Comparison]:
    """The fine-tuned model against `start` (the model it was trained from), then every model against every
    baseline, on each loss."""
    by_label = {s.label: s for s in scores}
    models = [s for s in scores if s.kind == "model"]
    baselines = [s for s in scores if s.kind == "baseline"]
    out = []
    if "fine-tuned" in by_label and start in by_label:
        out += [dm_test(by_label["fine-tuned"], by_label[start], m, predict) for m in LOSSES]
    for m in models:
        out += [dm_test(m, b, metric, predict) for metric in LOSSES for b in _distinct(baselines, metric)]
    return out


def strongest_baselines(scores: list[ModelScores]) -> dict[str, str]:
    """For each loss, the baseline with the lowest overall value (the leaderboard's column)."""
    out = {}
    for metric in LOSSES:
        finite = [s for s in scores if s.kind == "baseline" and np.isfinite(s.overall[metric])]
        if finite:
            out[metric] = min(finite, key=lambda s: s.overall[metric]).label
    return out
