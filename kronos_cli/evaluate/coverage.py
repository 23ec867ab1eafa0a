"""The calibration target as a table: each band's coverage against its nominal level (50/80/90%), and whether all
of them lie within `recalibration.TARGET` (5 points), as `--tune-sampling` reports the validation split and
`kronos evaluate` the split it scores."""

from __future__ import annotations

from kronos_cli.metrics.probabilistic import COVERAGES
from kronos_cli.metrics.recalibration import TARGET, meets_target
from kronos_cli.tables import Table, pct

TARGET_TEXT = f"target: each band's coverage within {TARGET * 100:g} points of its nominal level"


def coverage_table(title: str, rows: list[tuple[str, dict[str, float]]], caption: str = "") -> Table:
    """One row per (what, coverage: nominal level -> observed share), with whether it meets the target."""
    t = Table(
        title,
        ["", *[f"cov{level * 100:g}" for level in COVERAGES], "target met"],
        caption=" ".join(c for c in (TARGET_TEXT + ".", caption) if c),
    )
    for what, cov in rows:
        bands = {f"{level:g}": cov[f"{level:g}"] for level in COVERAGES}
        t.add(what, *[pct(share, 1) for share in bands.values()], "yes" if meets_target(bands) else "no")
    return t
