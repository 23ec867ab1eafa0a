"""`kronos export --adapter`: a LoRA run's adapters alone, in peft's format, for users who keep the base model."""

from __future__ import annotations

import shutil
from pathlib import Path

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_dir
from kronos_cli.records.runs import run_dir

STAGES = ("tokenizer", "predictor")


def export_adapters(cfg: Config, out: Path) -> list[Path]:
    """Copy each stage's `best_adapter` into `out/adapters/<stage>`; an error when the run trained none."""
    found = [(s, run_dir(cfg, s) / "checkpoints" / "best_adapter") for s in STAGES]
    found = [(s, p) for s, p in found if p.is_dir()]
    if not found:
        raise KronosError(
            f"the run {cfg.run_name!r} has no adapters (checkpoints/best_adapter); train with "
            f"training.method=lora to export them"
        )
    written = []
    for stage, src in found:
        target = Path(out) / "adapters" / stage
        with atomic_dir(target) as tmp:
            for f in src.iterdir():
                shutil.copy2(f, tmp / f.name)
        written.append(target)
    return written
