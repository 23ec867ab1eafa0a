"""`kronos demo`: the whole job on the embedded default, a synthetic market and tiny models, on the CPU.

The synthetic Qlib market is written into the output directory, and the pipeline runs `configs/demo.yaml`
(tiny models trained from scratch, since pretrained weights need the internet) with every path pointing there.
"""

from __future__ import annotations

from pathlib import Path

from kronos_cli.data.synthetic import write_market


def demo_overrides(out: Path, extra: list[str] = ()) -> list[str]:
    return [
        f"data.provider_uri={out / 'market'}",
        f"data.dataset_path={out / 'data' / 'processed_datasets'}",
        f"output_dir={out / 'outputs'}",
        *extra,
    ]


def ensure_market(out: Path) -> Path:
    market = out / "market"
    if not (market / "calendars" / "day.txt").is_file():
        write_market(market)
    return market
