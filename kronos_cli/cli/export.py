"""`kronos export`: bundle, Hub layout, int8/int4 and a compiled graph, each verified by reloading."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import StepProgress, console, print_json, print_tables


@opt.with_config
def export(
    out: Path = typer.Option(Path("exported"), "--out", help="Directory for the artifacts."),
    formats: str = typer.Option(
        "bundle,hf,int8,compiled",
        "--format",
        help="Comma-separated formats: bundle, hf, int8, int4 (weight-only through torchao), compiled, onnx (ONNX "
        "Runtime graphs and a numpy driver; needs the onnx extra).",
    ),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="[default: the run's fine-tuned one]"),
    model: str | None = typer.Option(None, "--model", help="[default: the run's fine-tuned one]"),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    push_to_hub: str | None = typer.Option(
        None, "--push-to-hub", help="Upload the hf export to this repo (token: HF_TOKEN, else `hf auth login`'s)."
    ),
    adapter: bool = typer.Option(
        False, "--adapter", help="Write only the LoRA adapters of a training.method=lora run (peft's format)."
    ),
    json_out: bool = opt.JSON,
    cfg=None,
) -> None:
    """Write deployable artifacts and verify each one in a fresh process."""
    from kronos_cli.export.run import run_export

    if adapter:
        from kronos_cli.export.adapters import export_adapters

        paths = export_adapters(cfg, out)
        if json_out:
            print_json({"adapters": [str(p) for p in paths]})
        else:
            console.print("\n".join(f"adapter: {p}" for p in paths))
        return

    with StepProgress("export") as bar:
        report = run_export(
            cfg,
            out,
            [f.strip() for f in formats.split(",") if f.strip()],
            tokenizer,
            model,
            force,
            push_to_hub,
            progress=bar.update,
        )
    if json_out:
        print_json(report.to_json())
        return
    print_export(report)


def print_export(report) -> None:
    print_tables(report.tables())
    for warning in report.warnings:
        console.print(f"warning: {warning}")
