"""`kronos download`: released checkpoints into huggingface_hub's cache, each predictor with its tokenizer."""

from __future__ import annotations

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, err_console, print_json, print_tables


def download(
    models: list[str] = typer.Argument(
        ..., help="Hub ids or released names: NeoQuasar/Kronos-small, mini, base, tokenizer-2k, ..."
    ),
    cache_dir: str = typer.Option(None, "--cache-dir", help="The Hub cache to use [default: huggingface_hub's]."),
    no_tokenizer: bool = typer.Option(False, "--no-tokenizer", help="Do not add a predictor's released tokenizer."),
    json_out: bool = opt.JSON,
) -> None:
    """Fetch checkpoints through huggingface_hub's cache (HF_TOKEN or `hf auth login`, HF_ENDPOINT and
    HF_HUB_OFFLINE are honoured) and check that the predictors and tokenizers fit each other."""
    from kronos_cli.core.tables import Table
    from kronos_cli.model.hub import DownloadError
    from kronos_cli.model.hub import download as fetch_models

    try:
        got = fetch_models(models, cache_dir, pair=not no_tokenizer)
    except DownloadError as exc:  # the network's fault, not the user's: one line, exit code 1
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if json_out:
        print_json([d.to_json() for d in got])
        return
    table = Table("kronos download", ["model", "kind", "context", "path"], caption="in the Hugging Face Hub cache")
    for d in got:
        table.add(d.hub_id, d.kind, d.max_context or "", d.path)
    print_tables([table])
    for d in got:
        if d.note:
            console.print(f"note: {d.hub_id} was {d.note}; the pair fits (same code sizes)", highlight=False)
