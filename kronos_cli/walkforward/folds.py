"""Each fold as a run of its own, through the library's functions: a derived config (its own ranges, dataset and
run directory under the walk-forward's directory), `prepare`, `run_stage` and `forecast_split`.

A fold's dataset ends on its test period's last bar, so nothing it trains on or forecasts from can see a later bar.
Stamps (`stamps.json`: the input hash of each fold's dataset and trained stages) make a rerun skip what is done; a
training interrupted mid-way resumes from its `checkpoints/last` when its inputs are unchanged, and starts afresh
when they changed. Forecasts go through the forecast cache, so a fold forecast once is never forecast again.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import write_json, write_text
from kronos_cli.data.manifest import read_manifest
from kronos_cli.data.prep import dataset_hash, prepare
from kronos_cli.forecast.windows import WindowForecasts
from kronos_cli.model.checkpoint import WEIGHTS_NAME
from kronos_cli.records.runs import ModelPair, best_model_dir, load_pair, run_dir
from kronos_cli.runtime.distributed import Context, Launch
from kronos_cli.runtime.split_forecasts import Scale, forecast_split, labelled_progress, open_dataset, split_windows
from kronos_cli.train.launch import run_stage
from kronos_cli.train.state import Observer, TrainOptions
from kronos_cli.walkforward.plan import Fold, FoldPlan

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]
STARTED = "walkforward_inputs.txt"  # in a fold's training directory: the input hash of the run it holds


def sha(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fold_config(cfg: Config, plan: FoldPlan, fold: Fold, root: Path) -> Config:
    """The config of one fold's run: its ranges, its data ending on its test period's last bar, its directories."""
    c = copy.deepcopy(cfg)
    c.run_name, c.output_dir = fold.name, str(root / "folds")
    c.data.dataset_path = str(root / "data" / fold.name)
    c.data.end_time = plan.stamp(fold.test[1])
    c.data.train_time_range, c.data.val_time_range = plan.dates(fold, "train"), plan.dates(fold, "val")
    c.data.test_time_range = plan.dates(fold, "test")
    c.data.embargo = plan.embargo
    c.backtest.start_time, c.backtest.end_time = plan.dates(fold, "test")
    c.backtest.sampling = "configured"  # a calibration belongs to one run's weights, not to each fold's
    c.evaluate.models = []
    return c


def span_config(cfg: Config, plan: FoldPlan, root: Path) -> Config:
    """The config of the stitched record's dataset: the whole data (labels need the bars after each signal), its
    test split the span of the folds' test periods."""
    first, last = plan.folds[0], plan.folds[-1]
    c = fold_config(cfg, plan, first, root)
    c.run_name, c.output_dir, c.data.end_time = "stitched", str(root / "stitched"), cfg.data.end_time
    c.data.dataset_path = str(root / "data" / "stitched")
    c.data.test_time_range = [plan.stamp(first.test[0]), plan.stamp(last.test[1])]
    c.backtest.start_time, c.backtest.end_time = c.data.test_time_range
    return c


def _preset(spec: str) -> bool:
    return spec.startswith("preset:")


@dataclass(frozen=True)
class FoldModel:
    """The pair a refitted fold trains and forecasts with: checkpoint specs and the hash of their inputs."""

    tokenizer: str
    predictor: str
    tokenizer_hash: str
    predictor_hash: str
    trains: tuple[str, ...]  # the stages this fold trains
    init: dict[str, str | None]  # the checkpoint each trained stage starts from (None: the config's model)


def plan_models(cfg: Config, plan: FoldPlan, root: Path) -> dict[int, FoldModel]:
    """Each refitted fold's model, in order: what it trains, from which checkpoint, with which tokenizer. A preset
    tokenizer (no weights) is trained in the first fold even when walkforward.stages leaves it out, and kept."""
    w, out, prev = cfg.walkforward, {}, None
    for fold in (f for f in plan.folds if f.refit):
        fcfg = fold_config(cfg, plan, fold, root)
        data = dataset_hash(fcfg)
        trains = tuple(
            s
            for s in ("tokenizer", "predictor")
            if s in w.stages or (s == "tokenizer" and prev is None and _preset(cfg.model.tokenizer))
        )
        chain = w.base == "previous" and prev is not None
        init = {s: getattr(prev, s) if chain and s in trains else None for s in ("tokenizer", "predictor")}
        training = (dataclasses.asdict(fcfg.training), cfg.seed)
        if "tokenizer" in trains:
            tok = str(best_model_dir(fcfg, "tokenizer"))
            tok_hash = sha(data, training, cfg.model.tokenizer, prev.tokenizer_hash if chain else None)
        else:
            tok, tok_hash = (
                (prev.tokenizer, prev.tokenizer_hash) if prev else (cfg.model.tokenizer, cfg.model.tokenizer)
            )
        pred_hash = sha(data, training, cfg.model.predictor, tok_hash, prev.predictor_hash if chain else None)
        prev = out[fold.index] = FoldModel(
            tok, str(best_model_dir(fcfg, "predictor")), tok_hash, pred_hash, trains, init
        )
    return out


@dataclass
class FoldForecasts:
    """A fold's test windows, forecast by its model and by the base model (zero-shot)."""

    fold: Fold
    names: Any  # (N,) symbol of each window
    origin_ns: Any  # (N,) signal time
    model: WindowForecasts
    base: WindowForecasts
    did: list[str]  # what ran: prep, train-tokenizer, train-predictor (skipped ones are absent)
    reused: int  # windows whose forecasts came from the cache
    seconds: dict[str, float] = field(default_factory=dict)  # prep, train, forecast: where the fold's time went


class Stamps:
    """`stamps.json`: the input hash of each fold's dataset and trained stages, written as each completes."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}

    def done(self, key: str, value: str) -> bool:
        return self.data.get(key) == value

    def mark(self, key: str, value: str) -> None:
        self.data[key] = value
        write_json(self.path, self.data)


def ensure_dataset(fcfg: Config, stamps: Stamps, progress: Progress | None = None) -> bool:
    """Prepare the fold's dataset unless it exists for the same inputs; whether it ran."""
    h, path = dataset_hash(fcfg), Path(fcfg.data.dataset_path)
    if stamps.done(f"{fcfg.run_name}/prep", h) and (path / "manifest.json").is_file():
        try:
            read_manifest(path)
            return False
        except KronosError:  # damaged: prepared again
            log.warning("the dataset at %s could not be read; preparing it again", path)
    prepare(fcfg, progress)
    stamps.mark(f"{fcfg.run_name}/prep", h)
    return True


@dataclass(frozen=True)
class Training:
    """How folds train and forecast: the device, the workers (`--nproc`, `--gpus`, nodes), the observer, and how
    often a training writes checkpoints/last besides at epoch ends (0: only there)."""

    device: str = "auto"
    launch: Launch = Launch()
    make_observer: Callable[[Context], Observer] | None = None
    checkpoint_every: int = 0


def _trained(fcfg: Config, stage: str) -> bool:
    d = run_dir(fcfg, stage)
    return (d / "summary.json").is_file() and (best_model_dir(fcfg, stage) / WEIGHTS_NAME).is_file()


def ensure_trained(fcfg: Config, model: FoldModel, stamps: Stamps, how: Training) -> list[str]:
    """Train the stages the fold refits unless done for the same inputs; the stages that ran. A run the same inputs
    started and did not finish resumes from checkpoints/last; one of other inputs is replaced."""
    ran = []
    for stage in model.trains:
        h = model.tokenizer_hash if stage == "tokenizer" else model.predictor_hash
        key, d = f"{fcfg.run_name}/{stage}", run_dir(fcfg, stage)
        if stamps.done(key, h) and _trained(fcfg, stage):
            continue
        same = (d / STARTED).is_file() and (d / STARTED).read_text().strip() == h
        tok = model.tokenizer if stage == "predictor" else None
        options = TrainOptions(
            stage,
            resume="auto" if same else None,
            init=model.init[stage],
            tokenizer=tok,
            checkpoint_every=how.checkpoint_every,
            overwrite=not same,
        )
        d.mkdir(parents=True, exist_ok=True)
        write_text(d / STARTED, h)
        log.info("%s: training the %s%s", fcfg.run_name, stage, " (resuming)" if same else "")
        run_stage(fcfg, options, how.device, how.launch, how.make_observer)
        stamps.mark(key, h)
        ran.append(f"train-{stage}")
    return ran


def forecast_fold(
    fcfg: Config, fold: Fold, pair: ModelPair, base: ModelPair, device, how: Training, progress: Progress | None
) -> tuple[Any, Any, WindowForecasts, WindowForecasts, int]:
    """The fold's test windows (names, signal times) forecast by its model and the base model, through the cache."""
    arrays = open_dataset(fcfg)
    origins = split_windows(fcfg, arrays, "test")
    scale, out = Scale(launch=how.launch), []
    for label, p in (("model", pair), ("base", base)):
        note = labelled_progress(progress, f"{fold.name} {label}")
        out.append(forecast_split(fcfg, arrays, origins, p, device, note, scale=scale))
    model, zero = out
    return model.names, model.origin_ns, model.forecasts, zero.forecasts, model.forecasts.reused + zero.forecasts.reused


def model_pair(model: FoldModel) -> ModelPair:
    return load_pair(None, model.tokenizer, model.predictor)
