"""Information coefficients: per-day cross-sectional correlation of a signal with the realised label; and, for
markets too small for a cross-section, the correlation of a signal with the label over time."""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.sandwich_covariance import cov_nw_groupsum

MIN_NAMES = 3  # a day's cross-section needs at least this many names with a known label


def _grouped_corr(df: pd.DataFrame, a: str, b: str) -> pd.Series:
    """Pearson correlation of columns a and b within each day, vectorised (no Python call per day)."""
    g = df.groupby(level="datetime")
    da, db = df[a] - g[a].transform("mean"), df[b] - g[b].transform("mean")
    parts = pd.DataFrame({"ab": da * db, "aa": da * da, "bb": db * db}).groupby(level="datetime").sum()
    denom = np.sqrt(parts["aa"] * parts["bb"])
    return (parts["ab"] / denom).where(denom > 0)


def daily_ic(signal: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per day: Pearson IC, Spearman Rank IC and the number of names, over (datetime, instrument) pairs that have
    both a signal and a known label."""
    df = pd.concat([signal.rename("s"), label.rename("r")], axis=1, join="inner").dropna()
    g = df.groupby(level="datetime")
    df["rs"], df["rr"] = g["s"].rank(), g["r"].rank()
    out = pd.DataFrame({"IC": _grouped_corr(df, "s", "r"), "Rank IC": _grouped_corr(df, "rs", "rr"), "names": g.size()})
    return out[out["names"] >= MIN_NAMES].dropna()


def _ir(x: pd.Series) -> float:
    return float(x.mean() / x.std()) if len(x) > 1 and x.std() > 0 else float("nan")


def ic_table(signal: pd.Series, label: pd.Series) -> dict[str, float]:
    """IC and Rank IC averaged over days, and their IRs (mean / std of the daily values)."""
    d = daily_ic(signal, label)
    ic, ric = (float(d[c].mean()) if len(d) else float("nan") for c in ("IC", "Rank IC"))
    return {"IC": ic, "ICIR": _ir(d["IC"]), "Rank IC": ric, "Rank ICIR": _ir(d["Rank IC"]), "days": int(len(d))}


def time_series_ic(signal: pd.Series, label: pd.Series, lags: int) -> dict[str, float]:
    """Skill over time rather than across names, over (datetime, instrument) pairs with both a signal and a label.

    "corr": the correlation of the signal with the label within each series (each standardised to its own mean
    and spread, then pooled: the windows-weighted mean of the series' correlations; for one series, their plain
    Pearson correlation). "t": that correlation over its standard error, Newey-West over time with `lags` lags
    on the per-time sums of the regression's scores (Driscoll-Kraay; for one series, plain Newey-West, no
    small-sample correction), since overlapping labels make neighbouring windows correlated.
    """
    df = pd.concat([signal.rename("s"), label.rename("r")], axis=1, join="inner").dropna()
    g = df.groupby(level="instrument")
    spread = g.transform("std", ddof=0)
    z = ((df - g.transform("mean")) / spread.where(spread > 1e-12)).dropna()  # a constant series drops out
    series = int(z.index.unique("instrument").size)
    out = {"corr": float("nan"), "t": float("nan"), "windows": int(len(z)), "series": series}
    times = pd.factorize(z.index.get_level_values("datetime"), sort=True)[0]
    if len(z) < 3 or times.max() < 2:  # too few to correlate
        return out
    fit = OLS(z["r"].to_numpy(), z[["s"]].to_numpy()).fit()  # both centred: no constant; the slope is corr
    se = float(np.sqrt(cov_nw_groupsum(fit, max(0, lags), times)[0, 0]))
    corr = float(fit.params[0])
    return {**out, "corr": corr, "t": corr / se if se > 0 else float("nan")}
