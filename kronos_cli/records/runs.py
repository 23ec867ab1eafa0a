"""Where a run's files live, which checkpoint a later stage uses by default, and loading a model pair.

Every output path of a config is built here: training runs, backtest and evaluation results, the forecast cache,
exported artifacts and the pipeline's stage stamps.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import json_text, recover_dir
from kronos_cli.forecast.predictor import KronosPredictor
from kronos_cli.forecast.spec import ForecastSpec, resolve_spec
from kronos_cli.market.sessions import INFER, canonical_calendar
from kronos_cli.model.bundle import load_bundle
from kronos_cli.model.checkpoint import WEIGHTS_NAME, read_conventions, resolve_checkpoint
from kronos_cli.model.config import Conventions, check_pair, released_context
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

STAGES = ("tokenizer", "predictor")
log = logging.getLogger(__name__)


def run_dir(cfg: Config, stage: str) -> Path:
    """`<output_dir>/models/<run_name>/<stage>/` for stage "tokenizer" or "predictor"."""
    return Path(cfg.output_dir) / "models" / cfg.run_name / stage


def best_model_dir(cfg: Config, stage: str) -> Path:
    return recover_dir(run_dir(cfg, stage) / "checkpoints" / "best_model")


def best_or_configured(cfg: Config, stage: str) -> str:
    """The run's fine-tuned best_model of `stage` when it exists, else the config's model for it."""
    best = best_model_dir(cfg, stage)
    if (best / WEIGHTS_NAME).is_file():
        return str(best)
    return cfg.model.tokenizer if stage == "tokenizer" else cfg.model.predictor


def backtest_dir(cfg: Config) -> Path:
    """`<output_dir>/backtest_results/<run_name>/`: a link to the newest backtest's result set (reports, signals,
    positions, plots), each run's own directory under `runs_root` (`records.record`); nothing else lives there."""
    return Path(cfg.output_dir) / "backtest_results" / cfg.run_name


def runs_root(cfg: Config) -> Path:
    """`<output_dir>/runs/`: every backtest and evaluation in its own directory (`records.store`); the directories
    above (`backtest_dir`, `evaluation_dir`) are links to the newest."""
    return Path(cfg.output_dir) / "runs"


def forecast_cache_dir(cfg: Config, key: str) -> Path:
    """`<output_dir>/forecast_cache/<run_name>/<key>/`: forecasts by window, shared by backtest and evaluate."""
    runs = Path(cfg.output_dir) / "forecast_cache" / cfg.run_name
    legacy = backtest_dir(cfg) / "forecast_cache"  # where earlier versions kept it: moved, not forecast again
    if legacy.is_dir() and not runs.exists():
        runs.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another worker of the same run moved it first
            legacy.rename(runs)
            log.info("moved the forecast cache from %s to %s", legacy, runs)
    return runs / key


def evaluation_dir(cfg: Config, split: str) -> Path:
    """`<output_dir>/evaluation/<run_name>/<split>/`: a link to the newest evaluation's result set (the leaderboard,
    its reports and plots), each run's own directory under `runs_root`."""
    return Path(cfg.output_dir) / "evaluation" / cfg.run_name / split


def initial_weights_dir(cfg: Config) -> Path:
    """`<output_dir>/evaluation/<run_name>/initial/`: a preset run's initial weights, rebuilt once for evaluate."""
    return Path(cfg.output_dir) / "evaluation" / cfg.run_name / "initial"


def result_about(cfg: Config, command: str) -> dict[str, str]:
    """What a result set's manifest records about the run that wrote it: the command, the run and its config."""
    config = hashlib.sha256(json_text(cfg.to_dict()).encode()).hexdigest()
    return {"command": command, "run_name": cfg.run_name, "config_sha256": config}


def sampling_file(cfg: Config) -> Path:
    """The sampling `kronos evaluate --tune-sampling` calibrated for the run's predictor."""
    return run_dir(cfg, "predictor") / "sampling.json"


def export_dir(cfg: Config) -> Path:
    """Where `kronos pipeline` exports the run's artifacts."""
    return Path(cfg.output_dir) / "exported" / cfg.run_name


def walkforward_dir(cfg: Config) -> Path:
    """`<output_dir>/walkforward/<run_name>/`: a walk-forward's folds (their data, runs and forecasts), its stitched
    record and its result set (`results/`)."""
    return Path(cfg.output_dir) / "walkforward" / cfg.run_name


def pipeline_stamps(cfg: Config) -> Path:
    """The input hash of each completed pipeline stage."""
    return Path(cfg.output_dir) / "pipeline" / f"{cfg.run_name}.json"


def run_calendar(cfg: Config) -> str | None:
    """The market calendar a run's bars follow when its config names one (data.csv.calendar other than infer);
    None for a Qlib provider or inferred sessions."""
    d = cfg.data
    return d.csv.calendar if d.source == "csv" and canonical_calendar(d.csv.calendar) != INFER else None


def data_conventions(cfg: Config) -> dict:
    """What a model trained or exported from this config must be fed: recorded beside its weights (and the market
    calendar its bars followed, when the config names one)."""
    d = cfg.data
    return Conventions(d.max_context, d.lookback_window, d.predict_window, d.clip, run_calendar(cfg)).to_dict()


@dataclass(frozen=True)
class ModelPair:
    """A tokenizer and a predictor that fit, with where they came from.

    `weights` names the files whose bytes identify the pair (the forecast cache keys on them); `conventions`
    holds what the predictor was trained with as its checkpoint or bundle recorded it (nothing for a released
    checkpoint, whose published context is `released_context`); `locator` is load_pair's (tokenizer, model,
    bundle), what a worker process loads the same pair from.
    """

    tokenizer: KronosTokenizer
    model: Kronos
    sources: dict[str, str]
    weights: tuple[Path, ...]
    conventions: Conventions
    locator: tuple[str | None, str | None, str | None] = (None, None, None)
    released_context: int | None = None

    def warn_if_trained_otherwise(self, cfg: Config) -> None:
        """A model trained with another lookback or horizon than the config's still runs, but says so."""
        for key in ("lookback_window", "predict_window"):
            trained, asked = getattr(self.conventions, key), getattr(cfg.data, key)
            if trained is not None and trained != asked:
                log.warning("the model was trained with %s %s, the config asks for %s", key, trained, asked)

    def resolve(self, cfg: Config | None = None, **given) -> ForecastSpec:
        """The forecast settings for this pair: `given` (flags, a request), then `cfg`, then what the pair
        records, then its release (`forecast.spec.resolve_spec`)."""
        return resolve_spec(**given, cfg=cfg, recorded=self.conventions, released_context=self.released_context)

    def forecaster(self, spec: ForecastSpec) -> KronosPredictor:
        """The predictor `spec` describes, with this pair's models."""
        return spec.predictor(self.model, self.tokenizer)


def _checkpoint(spec: str, run: Config | None, stage: str) -> Path:
    """The checkpoint directory of `spec`. With `run`, `spec` is what stood in for the run's own best_model; when
    it fails too, the error names the run directory looked in and the settings that point there."""
    try:
        return resolve_checkpoint(spec)
    except KronosError as exc:
        if run is None:
            raise
        d = run_dir(run, stage)
        state = "it has no checkpoints/best_model" if d.is_dir() else "it does not exist"
        where = (
            f"no trained {stage} in the run directory {d} (output_dir={run.output_dir} and run_name={run.run_name} "
            f"point there; {state})"
        )
        if not spec.startswith("preset:"):
            raise KronosError(f"{where}, and model.{stage}={spec}, tried instead, failed: {exc}") from None
        raise KronosError(
            f"{where}, and model.{stage}={spec} is an untrained architecture with no weights to load; train the run "
            f"first (`kronos pipeline -c CONFIG`), set output_dir and run_name to those of a trained run (`kronos "
            f"demo` writes its own to <out>/config.yaml), or name the checkpoints or the bundle to use"
        ) from None


def load_pair(
    cfg: Config | None = None, tokenizer: str | None = None, model: str | None = None, bundle: str | None = None
) -> ModelPair:
    """A bundle file, or a tokenizer and a predictor (Hub ids or directories; with a config, they default to the
    run's fine-tuned best_models, else the config's models)."""
    if bundle is not None:
        if tokenizer or model:
            raise KronosError("pass either a bundle or a tokenizer and a model, not both")
        tok, mdl, conventions = load_bundle(bundle)
        return ModelPair(
            tok,
            mdl,
            {"tokenizer": f"{bundle} (bundle)", "model": f"{bundle} (bundle)"},
            (Path(bundle).expanduser(),),
            conventions,
            (None, None, str(Path(bundle).expanduser())),
            released_context(None, mdl.config),
        )
    run = {"tokenizer": cfg if not tokenizer else None, "predictor": cfg if not model else None}
    if cfg is not None:
        tokenizer = tokenizer or best_or_configured(cfg, "tokenizer")
        model = model or best_or_configured(cfg, "predictor")
    if not (tokenizer and model):
        raise KronosError(
            "say which models to use: a tokenizer and a model (Hub ids or checkpoint directories), "
            "a bundle file from `kronos export`, or a config for a run's fine-tuned models"
        )
    tok_dir, model_dir = (
        _checkpoint(tokenizer, run["tokenizer"], "tokenizer"),
        _checkpoint(model, run["predictor"], "predictor"),
    )
    tok, mdl = KronosTokenizer.from_pretrained(tok_dir), Kronos.from_pretrained(model_dir)
    check_pair(tok.config, mdl.config)
    return ModelPair(
        tok,
        mdl,
        {"tokenizer": str(tokenizer), "model": str(model), "tokenizer_dir": str(tok_dir), "model_dir": str(model_dir)},
        (tok_dir / WEIGHTS_NAME, model_dir / WEIGHTS_NAME),
        read_conventions(model_dir),
        (str(tok_dir), str(model_dir), None),
        released_context(str(model), mdl.config),
    )


@dataclass(frozen=True)
class FineTuned:
    """A run's fine-tuned model: the run, the stage, the model it started from and its best checkpoint."""

    run: str
    stage: str
    base: str
    path: str


def fine_tuned(output_dir: str | Path) -> list[FineTuned]:
    """Every fine-tuned best_model under `<output_dir>/models/` (the layout `run_dir` builds), with the model each
    run started from (`model.tokenizer` or `model.predictor` in the run's config.json)."""
    out = []
    for stage_dir in sorted(Path(output_dir).expanduser().glob("models/*/*")):
        best = recover_dir(stage_dir / "checkpoints" / "best_model")
        if stage_dir.name not in STAGES or not (best / WEIGHTS_NAME).is_file():
            continue
        base = "unknown"
        with contextlib.suppress(OSError, ValueError, LookupError, TypeError):  # a run without its config
            base = str(json.loads((stage_dir / "config.json").read_text())["model"][stage_dir.name])
        out.append(FineTuned(stage_dir.parent.name, stage_dir.name, base, str(best)))
    return out
