"""`kronos prep`: market data into train/val/test window datasets."""

from __future__ import annotations

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import StepProgress, console, print_json, print_tables


@opt.with_config
def prep(json_out: bool = opt.JSON, cfg=None) -> None:
    """Turn Qlib (or CSV) bars into point-in-time, gap-aware train/val/test windows."""
    from kronos_cli.data.prep import prepare, split_table

    with StepProgress("prep") as bar:
        manifest = prepare(cfg, progress=bar.update)
    if json_out:
        print_json(manifest)
        return
    print_tables(split_table(manifest, cfg.data.dataset_path))
    kept, dropped = len(manifest["symbols"]), len(manifest["dropped"])
    console.print(
        f"symbols kept {kept}, dropped {dropped}; rows {manifest['rows']:,}; missing bars "
        f"{manifest['missing_rows']:,}; short segments dropped {manifest['short_segments_dropped']:,}; "
        f"{manifest['elapsed_s']:.1f} s"
    )
    imported = manifest["calendar"].get("imported")
    if imported:
        console.print(
            f"bars from {imported['files']} file(s) on the {imported['calendar']} calendar (bars stamped at their "
            f"{imported['bar_label']}), written as a Qlib provider in {cfg.data.dataset_path}/qlib; "
            f"{imported['missing_bars']:,} missing bars, {imported['filled_bars']:,} filled"
        )
    for d in manifest["dropped"][:10]:
        console.print(f"  dropped {d['symbol']}: {d['reason']}")
