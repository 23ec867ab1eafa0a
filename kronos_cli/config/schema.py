"""The config schema: one dataclass per section, with defaults and comments; `section_hash` of a section."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from kronos_cli.market.bars import FEATURES
from kronos_cli.market.stamps import STAMP_COLUMNS

PATH = {"path": True}  # field metadata: expand ~, resolve relative to the working directory
SECRET_KEYS = {"api_key", "apikey", "token", "password", "secret", "hf_token"}


@dataclass
class CsvConfig:
    path: str | None = field(default=None, metadata=PATH)  # one file with a symbol column, or a directory
    symbol_column: str = "symbol"  # in a single file; per-symbol files take the symbol from the file name
    timestamp_column: str = "timestamps"
    # How the timestamps are written: a strptime format (%d/%m/%Y %H:%M) or epoch_s, epoch_ms, epoch_us, epoch_ns;
    # None: detected from each file's whole column (ISO, YYYYMMDD, epoch numbers, day or month first).
    timestamp_format: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # our name -> the file's name, e.g. {volume: Vol}
    # The market's calendar, which says which bars should exist (a missing one is a gap; nights, lunch breaks,
    # weekends and holidays are not): an exchange_calendars name (XSHG, XNYS, XHKG, ...); 24/7 (crypto: never
    # closes); forex, also 24/5 or fx (Sunday 17:00 to Friday 17:00 New York time, bars stamped in UTC, New York
    # or broker time, at their start or end: recognised from the bars); or infer (the sessions seen in the data).
    calendar: str = "infer"
    bar_label: Literal["auto", "start", "end"] = "auto"  # is an intraday bar stamped at its start or its end?
    fill_gaps: int = 0  # runs of up to this many missing bars are filled (last close, zero volume), counted


@dataclass
class DataConfig:
    source: Literal["qlib", "csv"] = "qlib"
    provider_uri: str = field(default="~/.qlib/qlib_data/cn_data", metadata=PATH)
    region: Literal["cn", "us"] = "cn"
    instrument: str | list[str] = "csi300"
    freq: str = "day"  # the bar size: day, Nmin (1min, 5min, 15min) or Nh (1h)
    start_time: str = "2011-01-01"
    end_time: str = "2025-06-05"
    lookback_window: int = 90
    predict_window: int = 10
    max_context: int = 512
    features: list[str] = field(default_factory=lambda: list(FEATURES))  # fixed; vol/amt are accepted
    time_features: list[str] = field(default_factory=lambda: list(STAMP_COLUMNS))  # fixed: the predictor's
    # Target ranges of the splits, in this order and never overlapping (windows belong to a split by the bars
    # they forecast). `embargo` bars after each split's end belong to no split: default predict_window, 0 off.
    train_time_range: list[str] = field(default_factory=lambda: ["2011-01-01", "2022-12-31"])
    val_time_range: list[str] = field(default_factory=lambda: ["2023-01-01", "2024-03-31"])
    test_time_range: list[str] = field(default_factory=lambda: ["2024-04-01", "2025-06-05"])
    embargo: int | None = None
    # Which (day, stock) pairs train: only days the stock is in the pool (point_in_time) or every day of a stock
    # that was ever a member (ever_member). Signals and backtests are always point in time.
    universe: Literal["point_in_time", "ever_member"] = "point_in_time"
    clip: float = 5.0
    # Bars whose high is below the open or close, or whose low is above them: widened to the body and counted in
    # the manifest (repair), or refused naming the first (refuse).
    bad_candles: Literal["repair", "refuse"] = "repair"
    dataset_path: str = field(default="./data/processed_datasets", metadata=PATH)
    chunk_size: int = 50  # instruments read from Qlib at a time; bounds prep's memory
    csv: CsvConfig = field(default_factory=CsvConfig)


@dataclass
class CometConfig:
    enabled: bool = False
    project_name: str = "kronos-finetune"
    workspace: str | None = None
    offline: bool = False
    offline_directory: str = field(default="./outputs/comet", metadata=PATH)
    tags: list[str] = field(default_factory=list)


@dataclass
class MlflowConfig:
    # Training metrics, backtest and evaluation scores and their report.html, as MLflow runs: a directory is a local
    # file store (offline, `mlflow ui --backend-store-uri ./mlruns` shows it); a URI names a tracking server.
    enabled: bool = False
    tracking_uri: str = "./mlruns"
    experiment: str = "kronos"


@dataclass
class LoggingConfig:
    log_interval: int = 50  # steps between plain progress lines and batch metrics
    comet: CometConfig = field(default_factory=CometConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)


@dataclass
class ModelConfig:
    tokenizer: str = "NeoQuasar/Kronos-Tokenizer-base"  # Hub id, directory, or preset:NAME (scratch)
    predictor: str = "NeoQuasar/Kronos-small"


@dataclass
class LoraSettings:
    rank: int = 8
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.05
    # Linear layers that get adapters: attention (q, k, v, out) and feed-forward (w1, w2, w3) projections.
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj", "w1", "w2", "w3"])


@dataclass
class TrainingConfig:
    epochs: int = 30
    tokenizer_epochs: int | None = None  # default: epochs
    batch_size: int = 50
    tokenizer_learning_rate: float = 2e-4
    predictor_learning_rate: float = 4e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_weight_decay: float = 0.1
    scheduler: Literal["onecycle", "cosine"] = "onecycle"
    warmup_ratio: float = 0.03
    accumulation_steps: int = 1
    tokenizer_grad_clip: float = 2.0
    predictor_grad_clip: float = 3.0
    n_train_iter: int = 2000  # batches per epoch (samples = n_train_iter x batch_size)
    n_val_iter: int = 400
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    patience: int | None = None  # epochs without improvement before stopping
    # What trains: full (every weight), freeze (all but the first freeze_layers blocks, default half), head (the
    # output head only: linear probing), lora (low-rank adapters through peft; base weights frozen).
    method: Literal["full", "freeze", "head", "lora"] = "full"
    lora: LoraSettings = field(default_factory=LoraSettings)
    freeze_layers: int = 0
    # Which checkpoint becomes best_model: the lowest validation loss, or (predictor) the best skill on
    # select_days validation days: the highest mean daily IC of the mean signal, or the lowest CRPS.
    select_by: Literal["val_loss", "val_ic", "val_crps"] = "val_loss"
    select_days: int = 20
    select_samples: int = 4  # sample paths per window for the skill (at least 2: the CRPS needs a spread)
    l2_to_init: float = 0.0  # weight of an L2 pull toward the starting weights (forgetting control; 0: off)
    teacher_forcing: bool = True
    save_every: int = 1  # keep checkpoints/epoch_N every N epochs (0 = never)
    num_workers: int = -1  # DataLoader workers; -1: none on CPU (batched reads are cheap), 2 per GPU worker
    augment: list[str] = field(default_factory=list)  # noise, scale, time_warp, slice


@dataclass
class BacktestConfig:
    # The market's rules (backtest/markets.py): cn (10% limit, lots of 100), us, hk, crypto (fractional, 24/7),
    # fx (no limit, fractional, 24 hours 5 days a week). limit_threshold, trade_unit and the costs default to the
    # market's (None); 0 turns a limit or lot off.
    market: Literal["cn", "us", "hk", "crypto", "fx"] = "cn"
    # Bars a year that annualise returns; None: the market's trading days a year x the calendar's bars a trading
    # day (238 for A-share days, 8,760 for hourly crypto, 6,240 for hourly forex).
    bars_per_year: float | None = None
    # How bar returns accumulate: compound (cumulative prod(1 + r) - 1, annualised geometrically) or sum (Qlib's
    # risk_analysis: sum(r), mean x bars a year).
    accumulation: Literal["compound", "sum"] = "compound"
    # An index in the provider (SH000300), or equal-weight (the pool members' mean return); default: the index of
    # a known A-share pool (csi300 SH000300, csi800 SH000906, csi1000 SH000852), else equal-weight.
    benchmark: str | None = None
    start_time: str = "2024-07-01"
    end_time: str = "2025-06-05"
    topk: int = 50
    n_drop: int = 5
    hold_thresh: int = 5
    account: float = 1e8
    deal_price: Literal["open", "close"] = "open"  # the price trades fill at (and labels are measured at)
    limit_threshold: float | None = None
    trade_unit: float | None = None
    open_cost: float | None = None
    close_cost: float | None = None
    min_cost: float | None = None
    # Qlib's market impact: a trade of value v in a bar that traded value V pays impact_cost x (v / V)^2 of v on
    # top of its cost; volume_limit: the largest share of a bar's volume one order may take (cumulative over the day
    # for daily bars); None: the market's (0.1 and 0.1 for stocks and crypto, none for fx); 0 turns the cap off.
    impact_cost: float | None = None
    volume_limit: float | None = None
    # Sensitivity of the first signal's portfolio, rerun from the cached forecasts: capital levels (the account,
    # in its currency: [1e6, 1e7, 1e8]) and cost multipliers (of every cost, impact included: [0, 1, 2, 4]).
    capacity: list[float] = field(default_factory=list)
    cost_multipliers: list[float] = field(default_factory=list)
    # One series: its forecast's sign trades it long, and short (true) or flat (false) when it points down;
    # None: the market's (crypto and fx short, stock markets flat).
    short: bool | None = None
    # Forecast sampling (the reference's backtest defaults); `sampling: calibrated` takes temperature and top_p
    # from the run's sampling.json, written by `kronos evaluate --tune-sampling`.
    sampling: Literal["configured", "calibrated"] = "configured"
    temperature: float = 0.6
    top_p: float = 0.9
    top_k: int = 0
    sample_count: int = 5
    batch_size: int | Literal["auto"] = "auto"  # windows forecast at once; auto: what a quarter of free memory holds
    signals: list[str] = field(default_factory=lambda: ["last", "mean", "max", "min"])
    returns_signals: bool = False  # also write each signal as a price return (<name>_ret)
    signal_format: Literal["csv", "parquet"] = "csv"


@dataclass
class EvaluateConfig:
    split: Literal["val", "test"] = "test"  # scored on this split's signal days
    models: list[str] = field(default_factory=list)  # more to compare: LABEL=SPEC (a bundle, TOKENIZER,MODEL, a model)
    tune_temperatures: list[float] = field(default_factory=lambda: [0.6, 0.8, 1.0, 1.2])
    tune_top_ps: list[float] = field(default_factory=lambda: [0.9, 1.0])
    tune_windows: int = 1024  # validation windows `--tune-sampling` forecasts per setting


@dataclass
class WalkForwardConfig:
    # `kronos walkforward`: the out-of-sample span, cut into consecutive test periods, each with a model trained
    # on the bars before it. Periods are a number of the market's bars (63) or a calendar length (3M, 1Y, 2W).
    start: str | None = None  # the first test period's start; None: data.test_time_range's start
    end: str | None = None  # the last test period's end; None: data.end_time
    test_period: int | str = "3M"
    train_window: int | str = "expanding"  # expanding (from data.start_time) or a length before validation
    val_period: int | str = "3M"  # the validation range before each test period (model selection)
    embargo: int | None = None  # bars left out between train, val and test; None: data.embargo's
    refit_every: int = 1  # retrain every k folds; the folds between reuse the last refitted model
    stages: list[str] = field(default_factory=lambda: ["predictor"])  # what a refit trains: tokenizer, predictor
    base: Literal["config", "previous"] = "config"  # each refit starts from the config's model or the last fold's


@dataclass
class ForecastConfig:
    # The one-token decode step (model/compiled.py): auto compiles it with torch.compile when the run's decode steps
    # earn the compile back (never where a row must not depend on its batch: the server); on (true); off (false).
    # The compiled code is kept under $KRONOS_COMPILE_CACHE (default ~/.cache/kronos/compile) for the next process.
    compile: bool | Literal["auto"] = "auto"


@dataclass
class Config:
    run_name: str = "kronos"
    seed: int = 100
    output_dir: str = field(default="./outputs", metadata=PATH)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    walkforward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    config_file: str | None = field(default=None, compare=False)  # the file it came from

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("config_file", None)
        return d


def section_hash(section: Any) -> str:
    """A stable short hash of a config section (what decides whether cached outputs are still valid)."""
    blob = json.dumps(dataclasses.asdict(section), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
