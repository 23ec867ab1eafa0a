"""`kronos models`: the presets, the released models (context, parameters, cached here or not) and this
directory's fine-tuned runs with the model each started from."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import print_json, print_tables


def models(
    output_dir: Path = typer.Option(Path("outputs"), "--output-dir", help="Where runs are (a config's output_dir)."),
    cache_dir: str = typer.Option(None, "--cache-dir", help="The Hub cache to look in [default: huggingface_hub's]."),
    json_out: bool = opt.JSON,
) -> None:
    """List presets, released models and fine-tuned runs."""
    from kronos_cli.core.tables import Table
    from kronos_cli.model.config import PREDICTOR_PRESETS, TOKENIZER_PRESETS
    from kronos_cli.model.hub import cached, parameters, released
    from kronos_cli.records.runs import fine_tuned

    rel = [(r, parameters(r), cached(r.hub_id, cache_dir)) for r in released()]
    runs = fine_tuned(output_dir)
    if json_out:
        print_json(
            {
                "presets": sorted([*PREDICTOR_PRESETS, *TOKENIZER_PRESETS]),
                "released": [{**r.__dict__, "parameters": n, "cached": str(c) if c else None} for r, n, c in rel],
                "fine_tuned": [f.__dict__ for f in runs],
            }
        )
        return
    presets = Table("presets (model.predictor=preset:NAME)", ["preset", "kind", "d_model", "layers", "context"])
    for kind, table in (("predictor", PREDICTOR_PRESETS), ("tokenizer", TOKENIZER_PRESETS)):
        for name, p in table.items():
            layers = getattr(p.config, "n_layers", None) or f"{p.config.n_enc_layers}+{p.config.n_dec_layers}"
            presets.add(name, kind, p.config.d_model, layers, p.max_context)
    hub = Table("released models", ["model", "kind", "context", "parameters", "cached"], caption="kronos download")
    for r, n, c in rel:
        hub.add(r.hub_id, r.kind, r.max_context, f"{n / 1e6:.1f}M", "yes" if c else "no")
    tuned = Table(f"fine-tuned runs in {output_dir}", ["run", "stage", "base", "best model"])
    for f in runs:
        tuned.add(f.run, f.stage, f.base, f.path)
    print_tables([presets, hub, tuned] if runs else [presets, hub])
