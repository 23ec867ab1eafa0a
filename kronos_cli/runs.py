"""Where a run's files live, and which checkpoint a later stage uses by default."""

from __future__ import annotations

from pathlib import Path

from kronos_cli.config import Config


def run_dir(cfg: Config, stage: str) -> Path:
    """`<output_dir>/models/<run_name>/<stage>/` for stage "tokenizer" or "predictor"."""
    return Path(cfg.output_dir) / "models" / cfg.run_name / stage


def best_or_configured(cfg: Config, stage: str) -> str:
    """The run's fine-tuned best_model of `stage` when it exists, else the config's model for it."""
    best = run_dir(cfg, stage) / "checkpoints" / "best_model"
    if (best / "model.safetensors").is_file():
        return str(best)
    return cfg.model.tokenizer if stage == "tokenizer" else cfg.model.predictor
