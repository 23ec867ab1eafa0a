"""Information coefficients: per-day cross-sectional correlation of a signal with the realised label."""

from __future__ import annotations

import pandas as pd

MIN_NAMES = 3  # a day's cross-section needs at least this many names with a known label


def daily_ic(signal: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per day: Pearson IC, Spearman Rank IC and the number of names, over (datetime, instrument) pairs that have
    both a signal and a known label."""
    df = pd.concat([signal.rename("s"), label.rename("r")], axis=1, join="inner").dropna()
    df["rs"] = df.groupby(level="datetime")["s"].rank()
    df["rr"] = df.groupby(level="datetime")["r"].rank()
    g = df.groupby(level="datetime")
    out = pd.DataFrame(
        {
            "IC": g.apply(lambda d: d["s"].corr(d["r"])),
            "Rank IC": g.apply(lambda d: d["rs"].corr(d["rr"])),
            "names": g.size(),
        }
    )
    return out[out["names"] >= MIN_NAMES].dropna()


def _ir(x: pd.Series) -> float:
    return float(x.mean() / x.std()) if len(x) > 1 and x.std() > 0 else float("nan")


def ic_table(signal: pd.Series, label: pd.Series) -> dict[str, float]:
    """IC and Rank IC averaged over days, and their IRs (mean / std of the daily values)."""
    d = daily_ic(signal, label)
    ic, ric = (float(d[c].mean()) if len(d) else float("nan") for c in ("IC", "Rank IC"))
    return {"IC": ic, "ICIR": _ir(d["IC"]), "Rank IC": ric, "Rank ICIR": _ir(d["Rank IC"]), "days": int(len(d))}
