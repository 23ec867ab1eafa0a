"""Which models `kronos evaluate` compares: the run's fine-tuned pair, the pair it started from, and any
others given as `LABEL=SPEC` (SPEC: a bundle file, `TOKENIZER,MODEL`, or one predictor with the run's tokenizer).

A run trained from a preset started from random weights: they are rebuilt as training built them (same seed)
and saved once, labelled "initial weights", so that "did training help?" still has an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.model.checkpoint import WEIGHTS_NAME
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer
from kronos_cli.records.runs import ModelPair, best_model_dir, initial_weights_dir, load_pair


@dataclass
class Candidate:
    label: str
    role: str  # fine-tuned, zero-shot, initial weights, or given
    pair: ModelPair


def _fine_tuned(cfg: Config) -> bool:
    return (best_model_dir(cfg, "predictor") / WEIGHTS_NAME).is_file()


def initial_pair(cfg: Config, directory: Path) -> ModelPair:
    """The random weights a preset run started from: rebuilt with the training seed, saved under `directory`."""
    dirs = {"tokenizer": directory / "tokenizer", "model": directory / "model"}
    for name, cls, spec in (
        ("tokenizer", KronosTokenizer, cfg.model.tokenizer),
        ("model", Kronos, cfg.model.predictor),
    ):
        if not (dirs[name] / WEIGHTS_NAME).is_file():
            torch.manual_seed(cfg.seed)  # as the training recipe does before it builds the stage's model
            if spec.startswith("preset:"):
                cls.from_preset(spec.split(":", 1)[1]).save_pretrained(dirs[name])
            else:
                cls.from_pretrained(spec).save_pretrained(dirs[name])
    return load_pair(None, str(dirs["tokenizer"]), str(dirs["model"]))


def parse_spec(spec: str, cfg: Config) -> Candidate:
    """`LABEL=SPEC` (or SPEC alone, labelled by its name): a bundle, `TOKENIZER,MODEL`, or a predictor alone."""
    label, _, body = spec.rpartition("=") if "=" in spec else ("", "", spec)
    body = body.strip()
    if not body:
        raise KronosError(f"models {spec!r}: give a bundle file, TOKENIZER,MODEL, or a predictor", setting="models")
    try:
        if body.endswith((".pth", ".pt")) or Path(body).expanduser().is_file():
            pair = load_pair(None, bundle=body)
        elif "," in body:
            tok, model = (p.strip() for p in body.split(",", 1))
            pair = load_pair(None, tok, model)
        else:
            pair = load_pair(cfg, None, body)  # the run's tokenizer (fine-tuned, else configured)
    except KronosError as exc:
        raise KronosError(f"models {spec}: {exc}", setting="models") from None
    return Candidate(label or Path(body.split(",")[-1]).name or body, "given", pair)


def candidates(cfg: Config, specs: list[str]) -> list[Candidate]:
    """The fine-tuned pair (when the run has one), its starting point, and the given specs."""
    out: list[Candidate] = []
    if _fine_tuned(cfg):
        out.append(Candidate("fine-tuned", "fine-tuned", load_pair(cfg)))
    presets = cfg.model.predictor.startswith("preset:") or cfg.model.tokenizer.startswith("preset:")
    if presets:
        if out:  # random weights are a starting point only for a run that trained from them
            out.append(Candidate("initial weights", "initial weights", initial_pair(cfg, initial_weights_dir(cfg))))
    else:
        out.append(Candidate("zero-shot", "zero-shot", load_pair(None, cfg.model.tokenizer, cfg.model.predictor)))
    out += [parse_spec(s, cfg) for s in specs]
    labels = [c.label for c in out]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise KronosError(f"two models are labelled {', '.join(duplicates)}; name them with LABEL=SPEC")
    if not out:
        raise KronosError(
            "nothing to evaluate: the run has no fine-tuned model and model.predictor is a preset; "
            "train first, or pass models",
            setting="models",
        )
    return out
