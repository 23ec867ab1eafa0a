"""What a kept run says about itself, read from its files: the command, model, data, key scores and date; several
runs side by side with the settings that differ."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import MANIFEST
from kronos_cli.core.tables import Table, num, pct
from kronos_cli.records.store import CONFIG, label

RESULTS = {"backtest": "backtest_results.json", "evaluate": "evaluation.json", "walkforward": "walkforward.json"}
REFITTED = "fine-tuned"  # the walk-forward's label for its folds' refitted models, stitched


@dataclass
class RunSummary:
    id: str
    command: str
    path: str
    written: str
    model: str
    data: str
    scores: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self, full: bool = False) -> dict[str, Any]:
        d = dict(vars(self))
        return d if full else {k: v for k, v in d.items() if k != "config"}


def _read(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def command_of(run: Path) -> str:
    """The command whose results `run` holds; a KronosError when it holds none."""
    for command, name in RESULTS.items():
        if (run / name).is_file():
            return command
    names = ", ".join(RESULTS.values())
    raise KronosError(f"{run} holds no results (one of {names}): not a backtest, evaluation or walk-forward run")


def _results(run: Path) -> tuple[str, dict[str, Any]]:
    command = command_of(run)
    return command, _read(run / RESULTS[command])


def _backtest_scores(d: dict[str, Any]) -> tuple[str, dict[str, float]]:
    name, port = next(iter((d.get("portfolio") or {"": {}}).items()))
    w = port.get("with_cost", {})
    q = (d.get("signal_quality") or {}).get(name, {})
    scores = {"ann. return": w.get("annualized_return"), "IR": w.get("information_ratio")}
    scores |= {"max DD": w.get("max_drawdown"), "IC": q.get("IC"), "Rank IC": q.get("Rank IC")}
    return d.get("predictor", ""), {k: v for k, v in scores.items() if v is not None}


def _evaluate_scores(d: dict[str, Any]) -> tuple[str, dict[str, float]]:
    models = [m for m in d.get("models", []) if m.get("kind") == "model"]
    if not models:
        return "", {}
    m = models[0]
    o = m.get("overall", {})
    scores = {"MAE": o.get("MAE"), "CRPS": o.get("CRPS"), "cov90": m.get("coverage", {}).get("0.9")}
    scores |= {"IC": m.get("ic", {}).get("IC")} if m.get("ic", {}).get("IC") is not None else {}
    return m.get("source", ""), {k: v for k, v in scores.items() if v is not None}


def _walkforward_scores(d: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """The stitched record's IC t of the refitted models, the share of folds whose CRPS beat the base model's, and
    the span's one backtest's return with cost."""
    models = {m.get("label"): m for m in d.get("stitched", {}).get("models", [])}
    model, base = models.get(REFITTED, {}), models.get(d.get("base"), {})
    won = next((w for w in d.get("wins", []) if w.get("against") == d.get("base") and w.get("metric") == "CRPS"), {})
    stats = (d.get("backtest") or {}).get("stats", {}).get("with_cost", {})
    scores = {"IC t": model.get("ic", {}).get("IC_t"), "CRPS folds won": won.get("share")}
    scores |= {"span return": stats.get("total_return"), "span max DD": stats.get("max_drawdown")}
    started = str(base.get("source", "")).split(", ")[-1]  # the base's "tokenizer, predictor": what each refit began as
    return started, {k: v for k, v in scores.items() if v is not None}


KEY_SCORES = {"backtest": _backtest_scores, "evaluate": _evaluate_scores, "walkforward": _walkforward_scores}


def _numbers(d: dict[str, Any], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def all_scores(run: Path) -> dict[str, float]:
    """Every score of a run as `what.score` (what: a signal's portfolio and quality, or a model or baseline)."""
    command, d = _results(run)
    out: dict[str, float] = {}
    if command == "backtest":
        for name, port in (d.get("portfolio") or {}).items():
            for kind, stats in port.items():
                out |= _numbers(stats, f"{name}.{kind}.")
        for name, q in (d.get("signal_quality") or {}).items():
            out |= _numbers(q, f"{name}.")
        return out | _numbers(d.get("benchmark_stats") or {}, "benchmark.")
    if command == "walkforward":
        out |= _numbers((d.get("backtest") or {}).get("stats", {}).get("with_cost", {}), "span.with_cost.")
        won = {f"folds_won.{w.get('against')}.{w.get('metric')}": w.get("share") for w in d.get("wins", [])}
        out |= _numbers(won, "")
        d = d.get("stitched", {})
    for m in d.get("models", []):
        out |= _numbers(m.get("overall", {}), f"{m['label']}.") | _numbers(m.get("ic", {}), f"{m['label']}.")
        out |= _numbers(m.get("coverage", {}), f"{m['label']}.coverage_")
    return out


def summarise(root: Path, run: Path) -> RunSummary:
    command, d = _results(run)
    config = _read(run / CONFIG) or d.get("config", {})
    model, scores = KEY_SCORES[command](d)
    data = config.get("data", {})
    what = f"{data.get('instrument', '?')} {data.get('freq', '')}".strip() if data else "?"
    if command == "evaluate":
        what += f", {d.get('split', '?')} split"
    if command == "walkforward":
        what += f", {len(d.get('folds', []))} folds"
    written = str(_read(run / MANIFEST).get("written", ""))
    return RunSummary(label(root, run), command, str(run), written, model, what, scores, config)


def _score_text(key: str, value: float) -> str:
    return num(value, 2) if key in ("IR", "IC t") else num(value, 4) if "IC" in key else pct(value)


def runs_table(summaries: list[RunSummary], title: str) -> Table:
    t = Table(title, ["id", "command", "model", "data", "key scores", "written"])
    for s in summaries:
        scores = ", ".join(f"{k} {_score_text(k, v)}" for k, v in s.scores.items())
        when = (
            f"{s.written[:4]}-{s.written[4:6]}-{s.written[6:8]} {s.written[9:11]}:{s.written[11:13]}"
            if s.written
            else ""
        )
        t.add(s.id, s.command, _short(s.model), s.data, scores, when)
    return t


def _short(model: str, limit: int = 28) -> str:
    """A model as a table cell: a run's own checkpoint by its run and stage, anything else cut from the left."""
    parts = Path(model).parts
    if len(parts) > 4 and parts[-2:] == ("checkpoints", "best_model"):
        model = f"{parts[-4]}/{parts[-3]}"  # models/<run_name>/<stage>/checkpoints/best_model
    return model if len(model) <= limit else "..." + model[-(limit - 3) :]


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def differing_settings(summaries: list[RunSummary]) -> dict[str, list[Any]]:
    """The config keys whose values differ between the runs: key -> each run's value."""
    flats = [_flat(s.config) for s in summaries]
    keys = sorted(set().union(*flats))
    return {k: [f.get(k) for f in flats] for k in keys if len({json.dumps(f.get(k), default=str) for f in flats}) > 1}


def compare_tables(summaries: list[RunSummary]) -> list[Table]:
    ids = [s.id for s in summaries]
    scores = Table(
        "Scores side by side",
        ["score", *ids],
        caption="of the first signal (backtest), model (evaluate) or the stitched record (walk-forward)",
    )
    for key in dict.fromkeys(k for s in summaries for k in s.scores):
        scores.add(key, *[_score_text(key, s.scores[key]) if key in s.scores else "-" for s in summaries])
    scores.add("command", *[s.command for s in summaries])
    settings = Table("Settings that differ", ["key", *ids])
    for key, values in differing_settings(summaries).items():
        settings.add(key, *["-" if v is None else json.dumps(v, default=str) for v in values])
    if not settings.rows:
        settings.add("(none)", *[""] * len(ids))
    return [scores, settings]
