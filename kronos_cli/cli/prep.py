"""`kronos prep`: market data into train/val/test window datasets."""

from __future__ import annotations

from pathlib import Path

from kronos_cli.cli.common import (
    ConfigOpt,
    JsonOpt,
    OverridesArg,
    SetOpt,
    StepProgress,
    console,
    load_config,
    print_json,
    print_tables,
)


def prep(
    config: Path | None = ConfigOpt,
    overrides: list[str] | None = OverridesArg,
    sets: list[str] | None = SetOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Turn Qlib (or CSV) bars into leak-free, gap-aware train/val/test windows."""
    from kronos_cli.data.prep import prepare, split_table

    cfg = load_config(config, overrides, sets)
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
    for d in manifest["dropped"][:10]:
        console.print(f"  dropped {d['symbol']}: {d['reason']}")
