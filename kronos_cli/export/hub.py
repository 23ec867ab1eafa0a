"""The Hub side of an export: model cards built with `huggingface_hub.ModelCard`, and the upload.

A card's metadata says what the Hub indexes (base model, license, tags, library); its text the run's evaluation
leaderboard, the data it was trained and tested on, and the training summary. The upload's token is the one
`huggingface_hub` itself resolves: HF_TOKEN, else the token `hf auth login` stored; it is never logged or written.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, ModelCard, ModelCardData, get_token

from kronos_cli.core.errors import KronosError

TAGS = ["kronos", "time-series", "finance", "forecasting", "kronos-cli"]
LICENSE = "mit"  # the released Kronos weights' licence, which a fine-tune inherits
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class CardFacts:
    """What the cards of one export say: the models it started from, the data and the results."""

    base_models: dict[str, str]  # "tokenizer"/"model" -> what the run started from (a Hub id when it was one)
    data: dict[str, Any]  # market, bar size, date ranges of the splits
    summary: dict[str, Any] = field(default_factory=dict)  # the predictor's training summary.json
    evaluation: dict[str, Any] | None = None  # the run's evaluation.json (test split), if evaluated
    license: str = LICENSE


def _hub_id(source: str) -> str | None:
    """A released or uploaded model's id (owner/name), not a local directory or a preset."""
    return source if _HUB_ID.match(source) and not Path(source).expanduser().exists() else None


def _number(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) and math.isfinite(v) else "-" if isinstance(v, float) else str(v)


def leaderboard(evaluation: dict[str, Any]) -> list[str]:
    """The evaluation's models and baselines as a Markdown table of their overall scores and mean IC."""
    models = evaluation.get("models", [])
    if not models:
        return []
    metrics = list(models[0].get("overall", {}))
    ic = [k for k in models[0].get("ic", {}) if k in ("ic", "mean", "rank_ic")][:2]
    head = ["model", "kind", *metrics, *(f"IC {k}" for k in ic)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        cells = [m["label"], m.get("kind", ""), *(m["overall"].get(k) for k in metrics), *(m["ic"].get(k) for k in ic)]
        rows.append("| " + " | ".join(_number(c) for c in cells) + " |")
    return rows


def _body(name: str, facts: CardFacts, config: dict[str, Any]) -> list[str]:
    base = facts.base_models.get(name, "")
    d = facts.data
    lines = [
        f"# Fine-tuned Kronos {name}",
        "",
        f"Fine-tuned from `{base}` with kronos-cli, in the released checkpoint layout (`config.json`, "
        "`model.safetensors`): it loads with `from_pretrained` in kronos-cli and in the reference implementation "
        "(shiyu-coder/Kronos).",
        "",
        "## Data",
        "",
        f"- market: {d.get('instrument', '-')} ({d.get('source', '-')}), bars of {d.get('freq', '-')}",
        *(f"- {split}: {' to '.join(map(str, d[split]))}" for split in ("train", "val", "test") if d.get(split)),
        f"- lookback {d.get('lookback_window', '-')} bars, forecast {d.get('predict_window', '-')} bars",
        "",
    ]
    if facts.evaluation:
        split = facts.evaluation.get("split", "test")
        lines += [f"## Evaluation ({split} split)", "", *leaderboard(facts.evaluation), ""]
    lines += ["## Configuration", "", "```json", json.dumps(config, indent=2), "```", ""]
    if facts.summary:
        summary = json.dumps(facts.summary, indent=2, default=str)
        lines += ["## Training summary", "", "```json", summary, "```", ""]
    return lines


def model_card(name: str, facts: CardFacts, config: dict[str, Any]) -> ModelCard:
    """The card of the `name` checkpoint ("tokenizer" or "model") with its config.json."""
    base = _hub_id(facts.base_models.get(name, ""))
    meta = ModelCardData(
        license=facts.license,
        library_name="kronos-cli",
        tags=TAGS,
        pipeline_tag="time-series-forecasting",
        base_model=base,
        **({"base_model_relation": "finetune"} if base else {}),
    )
    return ModelCard("\n".join(["---", meta.to_yaml(), "---", "", *_body(name, facts, config)]))


def write_cards(dirs: dict[str, Path], facts: CardFacts) -> None:
    """A README.md model card in each checkpoint directory of the Hub layout."""
    for name, d in dirs.items():
        config = json.loads((d / "config.json").read_text())
        model_card(name, facts, config).save(d / "README.md")


def hub_token() -> str:
    """HF_TOKEN, else the token `hf auth login` stored (as huggingface_hub resolves it); a one-line error if none."""
    token = get_token()
    if not token:
        raise KronosError(
            "push_to_hub needs a Hugging Face token: run `hf auth login` once, or set HF_TOKEN for this run",
            setting="push_to_hub",
        )
    return token


def push_to_hub(folder: Path, repo_id: str) -> str:
    """Upload the Hub-layout export to `repo_id` (created if missing); returns the commit's URL."""
    api = HfApi(token=hub_token())
    api.create_repo(repo_id, exist_ok=True)
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="kronos export"))
