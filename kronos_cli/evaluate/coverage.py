"""The calibration target as a table: each band's coverage against its nominal level (50/80/90%), whether all of
them lie within `recalibration.TARGET` (5 points), as `--tune-sampling` reports the validation split and `kronos
evaluate` the split it scores, and, where the standard errors are known, whether a miss is more than chance: on a
few hundred windows of one series a band's coverage sits about 4 points from its expectation by chance alone, so
a 7-point miss there says little, a 7-point miss over thousands of windows a lot."""

from __future__ import annotations

from kronos_cli.core.tables import Table, pct
from kronos_cli.metrics.probabilistic import COVERAGES
from kronos_cli.metrics.recalibration import TARGET, meets_target

TARGET_TEXT = f"target: each band's coverage within {TARGET * 100:g} points of its nominal level"
SIGNIFICANT = 1.96  # a miss beyond this many standard errors is more than chance (two-sided 5%)

Row = tuple[str, dict[str, float]] | tuple[str, dict[str, float], dict[str, float]]


def significant_misses(coverage: dict[str, float], se: dict[str, float]) -> list[str]:
    """The bands whose coverage lies more than SIGNIFICANT standard errors from their nominal level."""
    return [
        level
        for level, share in coverage.items()
        if se.get(level, 0) > 0 and abs(share - float(level)) > SIGNIFICANT * se[level]
    ]


def coverage_table(title: str, rows: list[Row], caption: str = "") -> Table:
    """One row per (what, coverage: nominal level -> observed share[, its standard errors]), with whether it
    meets the target and, given the standard errors, which bands miss by more than chance."""
    with_se = any(len(r) == 3 and r[2] for r in rows)
    noise = (
        f"± one standard error over signal times (Newey-West); 'beyond chance': bands more than {SIGNIFICANT:g} "
        "standard errors from nominal."
        if with_se
        else ""
    )
    t = Table(
        title,
        ["", *[f"cov{level * 100:g}" for level in COVERAGES], "target met", *(["beyond chance"] if with_se else [])],
        caption=" ".join(c for c in (TARGET_TEXT + ".", noise, caption) if c),
    )
    for what, cov, *rest in rows:
        se = rest[0] if rest and rest[0] else {}
        bands = {f"{level:g}": cov[f"{level:g}"] for level in COVERAGES}
        cells = [pct(share, 1) + (f" ± {se[k] * 100:.1f}" if k in se else "") for k, share in bands.items()]
        misses = [f"cov{float(k) * 100:g}" for k in significant_misses(bands, se)]
        t.add(what, *cells, "yes" if meets_target(bands) else "no", *([", ".join(misses) or "none"] if with_se else []))
    return t
