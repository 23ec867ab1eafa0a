"""Bands that hold: the quantiles of a model's sample paths recalibrated on the validation split (normalised split
conformal prediction), so that its 50/80/90% bands hold 50/80/90% of the outcomes.

Each window's paths give a centre (their mean) and a spread (their standard deviation) at each horizon step. On
validation windows the standardised residual z = (outcome - centre) / spread is collected per step, and its
empirical quantiles at LEVELS become the bands: quantile q of a window is centre + spread x Q_h(q). The spread
keeps each window's own uncertainty (a calm stock's band stays narrow); Q_h gives each level its own width, which
a single scale of the paths' deviations cannot: with a few paths the empirical 50% and 90% bands are order
statistics whose ratio is fixed (of 5 paths, the 80% and 90% bands both end between the two outermost paths on
each side), so a scale that gives the 90% band its coverage over-widens the 50% band.

Bands are fitted per horizon step (uncertainty grows along the horizon) and per number of paths: a spread
estimated from 4 paths is noisier than from 32, so its residuals have heavier tails. The tuned paths' first k give
the residuals for each k of a ladder (2, 3, 4, 6, 8, 12, ... up to the tuned count); k paths use the bands of the
largest count fitted that is at most k (more paths than were tuned: slightly wider bands than nominal). Steps
beyond the fitted horizon take the last step's bands. Centre and spread follow any affine map of the paths, so
the bands are the same for returns on the last close and for prices. A window whose paths all agree (spread 0)
keeps a zero-width band. The paths themselves, and so their mean (the point forecast and every signal), are left
as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LEVELS = np.round(np.arange(1, 100) / 100, 2)  # the quantile levels kept per step: 0.01 .. 0.99
TARGET = 0.05  # what calibration aims at: each band's coverage within 5 points of its nominal level
MIN_RESIDUALS = 20  # per horizon step; with fewer, no bands are fitted


def path_counts(paths: int) -> tuple[int, ...]:
    """The numbers of paths bands are fitted for: 2, 3, 4, 6, 8, 12, 16, ... below `paths`, and `paths`."""
    if paths < 2:
        return ()
    ladder = {k for i in range(31) for k in (2 << i, 3 << i) if k < paths}
    return tuple(sorted(ladder | {paths}))


def centre_spread(paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the standard deviation of paths (..., S, P) over their S samples: each (..., P)."""
    return paths.mean(axis=-2), paths.std(axis=-2)


@dataclass(frozen=True)
class BandCorrection:
    """Per number of paths, the quantiles at `levels` of the standardised residual of each horizon step."""

    levels: np.ndarray  # (L,) increasing, in (0, 1)
    tables: dict[int, np.ndarray]  # paths -> (P, L): row h, the residual quantiles of step h + 1
    windows: int  # validation windows it was fitted on

    def table(self, paths: int) -> np.ndarray:
        """The bands of the largest path count fitted that is at most `paths` (the smallest when fewer)."""
        fitted = [k for k in self.tables if k <= paths]
        return self.tables[max(fitted) if fitted else min(self.tables)]

    def residual_quantiles(self, qs, paths: int, steps: int) -> np.ndarray:
        """(Q, steps): the standardised residual's quantiles `qs` (clamped to the levels kept) for `paths` paths;
        steps beyond the fitted horizon take the last step's."""
        table = self.table(paths)
        rows = np.minimum(np.arange(steps), len(table) - 1)
        return np.stack([np.interp(np.atleast_1d(qs), self.levels, table[h]) for h in rows], axis=-1)

    def quantiles(self, paths: np.ndarray, qs) -> np.ndarray:
        """Quantiles `qs` (Q levels) of sample paths (..., S, P), in the paths' own units: (Q, ..., P)."""
        centre, spread = centre_spread(paths)
        z = self.residual_quantiles(qs, paths.shape[-2], paths.shape[-1])
        z = z.reshape(len(z), *([1] * (paths.ndim - 2)), z.shape[-1])
        return centre + spread * z

    def describe(self) -> dict[str, Any]:
        """What the bands were fitted for, without their tables."""
        return {"windows": self.windows, "paths": sorted(self.tables), "steps": len(next(iter(self.tables.values())))}

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "standardised residual quantiles (normalised split conformal)",
            "levels": self.levels.tolist(),
            "windows": self.windows,
            "paths": {str(k): np.round(t, 6).tolist() for k, t in sorted(self.tables.items())},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BandCorrection:
        """The bands `to_json` wrote; ValueError (or KeyError, TypeError) names what is wrong."""
        levels = np.asarray(d["levels"], dtype=np.float64)
        if levels.ndim != 1 or len(levels) < 2 or not (np.diff(levels) > 0).all() or not 0 < levels[0] < levels[-1] < 1:
            raise ValueError("bands.levels must be increasing levels in (0, 1)")
        tables = {int(k): np.asarray(v, dtype=np.float64) for k, v in dict(d["paths"]).items()}
        for k, t in tables.items():
            if k < 2 or t.ndim != 2 or t.shape[1] != len(levels) or not np.isfinite(t).all():
                raise ValueError(f"bands.paths.{k} must be one row of {len(levels)} finite quantiles per step")
            if (np.diff(t, axis=1) < 0).any():
                raise ValueError(f"bands.paths.{k}: quantiles must not decrease with the level")
        if not tables:
            raise ValueError("bands.paths is empty")
        return cls(levels, tables, int(d["windows"]))


def fit_bands(paths: np.ndarray, obs: np.ndarray) -> BandCorrection | None:
    """Bands for sample paths (N, S, P) from the outcomes `obs` (N, P; NaN where unknown), or None where a step has
    fewer than MIN_RESIDUALS residuals (unknown outcomes and windows whose paths all agree give none) or S < 2."""
    tables = {}
    for k in path_counts(paths.shape[1]):
        centre, spread = centre_spread(paths[:, :k])
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(spread > 0, (obs - centre) / spread, np.nan)
        known = np.isfinite(z)
        if known.sum(axis=0).min() < MIN_RESIDUALS:
            return None
        tables[k] = np.stack([np.quantile(z[known[:, h], h], LEVELS) for h in range(z.shape[1])])
    return BandCorrection(LEVELS.copy(), tables, len(paths)) if tables else None


@dataclass
class Recalibrated:
    """Sample paths (N, S, P) read through their bands: the paths' mean is the point forecast, the bands give the
    quantiles, the CRPS (of the quantile function at the levels kept) and the PIT."""

    samples: np.ndarray
    bands: BandCorrection

    def point(self) -> np.ndarray:
        return self.samples.mean(axis=1)

    def quantiles(self, qs) -> np.ndarray:
        return self.bands.quantiles(self.samples, qs)

    def crps(self, obs: np.ndarray) -> np.ndarray:
        """2 x the pinball loss averaged over the levels kept (0.01 .. 0.99): the CRPS of the bands' quantile
        function, its outermost 0.5% on each side left out."""
        total = np.zeros(obs.shape)
        for level, q in zip(self.bands.levels, self.quantiles(self.bands.levels)):
            total += (np.where(obs < q, 1.0, 0.0) - level) * (q - obs)
        return 2 * total / len(self.bands.levels)

    def pit(self, obs: np.ndarray) -> np.ndarray:
        """The level of each outcome in its bands (0 or 1 beyond the levels kept; 0, 0.5 or 1 for a zero width)."""
        centre, spread = centre_spread(self.samples)
        table = self.bands.table(self.samples.shape[1])
        out = np.where(obs > centre, 1.0, np.where(obs < centre, 0.0, 0.5))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (obs - centre) / spread
        for h in range(obs.shape[1]):
            row = table[min(h, len(table) - 1)]
            spread_h = spread[:, h] > 0
            out[spread_h, h] = np.interp(z[spread_h, h], row, self.bands.levels, left=0.0, right=1.0)
        return out


def meets_target(coverage: dict[str, float]) -> bool:
    """Whether every band's coverage (nominal level -> observed share) lies within TARGET of its level."""
    return all(abs(share - float(level)) <= TARGET for level, share in coverage.items())
