"""`kronos export`: bundle, Hub layout, int8 and a compiled graph, each verified by reloading."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli.common import ConfigOpt, JsonOpt, OverridesArg, SetOpt, console, load_config, print_json


def export(
    config: Path | None = ConfigOpt,
    overrides: list[str] | None = OverridesArg,
    sets: list[str] | None = SetOpt,
    out: Path = typer.Option(Path("exported"), "--out", help="Directory for the artifacts."),
    formats: str = typer.Option("bundle,hf,int8,compiled", "--format", help="Comma-separated formats."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="[default: the run's fine-tuned one]"),
    model: str | None = typer.Option(None, "--model", help="[default: the run's fine-tuned one]"),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    push_to_hub: str | None = typer.Option(
        None, "--push-to-hub", help="Upload the hf export to this repo (token from HF_TOKEN)."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Write deployable artifacts and verify each one in a fresh process."""
    from kronos_cli.export.run import run_export

    cfg = load_config(config, overrides, sets)
    report = run_export(
        cfg, out, [f.strip() for f in formats.split(",") if f.strip()], tokenizer, model, force, push_to_hub
    )
    if json_out:
        print_json(report)
        return
    from rich.table import Table

    table = Table(
        title=f"kronos export -> {report['out']} (greedy forecasts of {report['verify_windows']} windows "
        f"vs the eager model, normalised units)"
    )
    for col in ("format", "size", "max |diff|", "mean |diff|", "tolerance", "verified"):
        table.add_column(col, justify="right")
    for r in report["artifacts"]:
        table.add_row(
            r["format"],
            f"{r['bytes'] / 1e6:.2f} MB",
            f"{r['max_abs_diff']:.2e}",
            f"{r['mean_abs_diff']:.2e}",
            r["tolerance"],
            "yes" if r["ok"] else "NO",
        )
    console.print(table)
    if "int8" in report:
        i = report["int8"]
        console.print(f"int8: {i['size_ratio']:.0%} of the fp32 size, {i['cpu_speedup']:.2f}x fp32 CPU speed")
