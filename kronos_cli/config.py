"""Typed YAML configs: sections as dataclasses, one loader with dotted overrides, all errors at once.

`load(path, overrides)` reads a YAML file (or only the defaults when `path` is None), applies `key=value`
overrides, checks every key and type against the schema, resolves relative paths against the config file's
folder (overrides against the working directory) and returns a `Config`. Unknown keys are errors with a
"did you mean". Secrets never come from YAML: the Comet API key is read from COMET_API_KEY only.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from kronos_cli.bars import FEATURES, canonical
from kronos_cli.calendar import STAMP_COLUMNS
from kronos_cli.errors import KronosError

PATH = {"path": True}  # field metadata: resolve relative to the config file, expand ~
SECRET_KEYS = {"api_key", "apikey", "token", "password", "secret", "hf_token"}


class ConfigError(KronosError):
    """One or more config problems; each names the key and the file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems) if len(problems) > 1 else problems[0])


@dataclass
class CsvConfig:
    path: str | None = field(default=None, metadata=PATH)  # one file with a symbol column, or a directory
    symbol_column: str = "symbol"  # in a single file; per-symbol files take the symbol from the file name
    timestamp_column: str = "timestamps"
    columns: dict[str, str] = field(default_factory=dict)  # our name -> the file's name, e.g. {volume: Vol}
    max_gap: str | None = None  # a step longer than this (e.g. "3D", "15min") splits a series


@dataclass
class DataConfig:
    source: Literal["qlib", "csv"] = "qlib"
    provider_uri: str = field(default="~/.qlib/qlib_data/cn_data", metadata=PATH)
    region: Literal["cn", "us"] = "cn"
    instrument: str | list[str] = "csi300"
    freq: Literal["day", "1min", "5min"] = "day"
    start_time: str = "2011-01-01"
    end_time: str = "2025-06-05"
    lookback_window: int = 90
    predict_window: int = 10
    max_context: int = 512
    features: list[str] = field(default_factory=lambda: list(FEATURES))  # fixed; vol/amt are accepted
    time_features: list[str] = field(default_factory=lambda: list(STAMP_COLUMNS))  # fixed: the predictor's
    train_time_range: list[str] = field(default_factory=lambda: ["2011-01-01", "2022-12-31"])
    val_time_range: list[str] = field(default_factory=lambda: ["2022-09-01", "2024-06-30"])
    test_time_range: list[str] = field(default_factory=lambda: ["2024-04-01", "2025-06-05"])
    clip: float = 5.0
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
class LoggingConfig:
    log_interval: int = 50  # steps between plain progress lines and batch metrics
    comet: CometConfig = field(default_factory=CometConfig)


@dataclass
class ModelConfig:
    tokenizer: str = "NeoQuasar/Kronos-Tokenizer-base"  # Hub id, directory, or preset:NAME (scratch)
    predictor: str = "NeoQuasar/Kronos-small"


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
    freeze_layers: int = 0
    teacher_forcing: bool = True
    save_every: int = 1  # keep checkpoints/epoch_N every N epochs (0 = never)
    num_workers: int = -1  # DataLoader workers; -1: none on CPU (batched reads are cheap), 2 per GPU worker
    augment: list[str] = field(default_factory=list)  # noise, scale, time_warp, slice


@dataclass
class BacktestConfig:
    benchmark: str | None = None  # default from the pool: csi300 SH000300, csi800 SH000906, csi1000 SH000852
    start_time: str = "2024-07-01"
    end_time: str = "2025-06-05"
    topk: int = 50
    n_drop: int = 5
    hold_thresh: int = 5
    account: float = 1e8
    deal_price: str = "open"
    limit_threshold: float = 0.095
    open_cost: float = 0.001
    close_cost: float = 0.0015
    min_cost: float = 5.0
    temperature: float = 0.6
    top_p: float = 0.9
    top_k: int = 0
    sample_count: int = 5
    batch_size: int = 256
    signals: list[str] = field(default_factory=lambda: ["last", "mean", "max", "min"])
    returns_signals: bool = False  # also write each signal as a price return (<name>_ret)
    signal_format: Literal["csv", "parquet"] = "csv"


@dataclass
class Config:
    run_name: str = "kronos"
    seed: int = 100
    output_dir: str = field(default="./outputs", metadata=PATH)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
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


# ---------------------------------------------------------------- loading


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError([f"override {text!r} must look like key=value, e.g. data.instrument=csi800"])
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _set(tree: dict, keys: list[str], value: Any) -> None:
    node = tree
    for k in keys[:-1]:
        nxt = node.get(k)
        if not isinstance(nxt, dict):
            nxt = node[k] = {}
        node = nxt
    node[keys[-1]] = value


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError([f"no config file at {path}; see `kronos config ls` for the shipped ones"])
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML ({str(exc).splitlines()[0]})"]) from exc
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    return data


def load(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The resolved config of `path` (defaults when None) with `key=value` overrides applied."""
    cfg_path = Path(path).expanduser().resolve() if path is not None else None
    tree = read_yaml(cfg_path) if cfg_path else {}
    overridden: set[str] = set()
    for text in overrides:
        keys, value = parse_override(text)
        _set(tree, keys, value)
        overridden.add(".".join(keys))
    where = str(cfg_path) if cfg_path else "defaults"
    base = cfg_path.parent if cfg_path else Path.cwd()
    problems: list[str] = []
    cfg = _build(Config, tree, "", where, base, overridden, problems)
    problems += _semantic_checks(cfg, where)
    if problems:
        raise ConfigError(problems)
    cfg.config_file = str(cfg_path) if cfg_path else None
    return cfg


def _build(cls: type, data: Any, prefix: str, where: str, base: Path, overridden: set[str], problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{where}: {prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "config_file"}
    kwargs = {}
    file_where = where
    for key, value in data.items():
        name = f"{prefix}{key}"
        where = "command-line override" if name in overridden else file_where
        if str(key).lower() in SECRET_KEYS:
            problems.append(
                f"{where}: {name}: secrets are never read from config files; set them in the "
                f"environment (COMET_API_KEY for Comet) and remove this key"
            )
            continue
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys: {', '.join(fields)}"
            problems.append(f"{where}: unknown key {name}{hint}")
            continue
        f, tp = fields[key], hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{name}.", file_where, base, overridden, problems)
            continue
        ok, coerced = _check_type(value, tp)
        if not ok:
            problems.append(f"{where}: {name} must be {_describe(tp)}, got {value!r}")
            continue
        if f.metadata.get("path") and isinstance(coerced, str):
            p = Path(coerced).expanduser()
            if not p.is_absolute():
                p = (Path.cwd() if name in overridden else base) / p
            coerced = str(p.resolve())
        kwargs[key] = coerced
    # Defaults that are paths resolve against the config file's folder too.
    for name, f in fields.items():
        if name in kwargs:
            continue
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], {}, f"{prefix}{name}.", file_where, base, overridden, problems)
        elif f.metadata.get("path") and f.default not in (None, dataclasses.MISSING):
            p = Path(f.default).expanduser()
            kwargs[name] = str(p if p.is_absolute() else (base / p).resolve())
    return cls(**kwargs)


def _check_type(value: Any, tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, v = _check_type(value, arg)
            if ok:
                return True, v
        return False, None
    if tp is type(None):
        return value is None, None
    if origin is Literal:
        return value in args, value
    if origin is list:
        if not isinstance(value, list):
            return False, None
        out = []
        for item in value:
            ok, v = _check_type(item, args[0])
            if not ok:
                return False, None
            out.append(v)
        return True, out
    if origin is dict:
        if not isinstance(value, dict):
            return False, None
        return all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()), dict(value)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, None
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return True, str(value)  # YAML reads 2024-01-01 as a date; dates come back as str() below
        if hasattr(value, "isoformat"):
            return True, value.isoformat()
        return False, None
    return isinstance(value, tp), value


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0])}"
    if origin is dict:
        return "a mapping of strings"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _semantic_checks(cfg: Config, where: str) -> list[str]:
    d, problems = cfg.data, []
    for key in ("lookback_window", "predict_window", "max_context", "chunk_size"):
        if getattr(d, key) <= 0:
            problems.append(f"{where}: data.{key} must be > 0, got {getattr(d, key)}")
    if d.lookback_window + d.predict_window + 1 > d.max_context:
        problems.append(
            f"{where}: data.lookback_window + data.predict_window + 1 "
            f"({d.lookback_window + d.predict_window + 1}) exceeds data.max_context ({d.max_context})"
        )
    if d.clip <= 0:
        problems.append(f"{where}: data.clip must be > 0, got {d.clip}")
    if [canonical(f) for f in d.features] != list(FEATURES):
        problems.append(
            f"{where}: data.features must be {list(FEATURES)} (the order the released tokenizers "
            f"expect; vol and amt are accepted for volume and amount)"
        )
    d.features = list(FEATURES)
    if d.time_features != list(STAMP_COLUMNS):
        problems.append(f"{where}: data.time_features must be [{', '.join(STAMP_COLUMNS)}]")

    def date(key: str, text: str):
        try:
            return pd.Timestamp(text)
        except (ValueError, TypeError):
            problems.append(f"{where}: {key} is not a date: {text!r}")
            return None

    start, end = date("data.start_time", d.start_time), date("data.end_time", d.end_time)
    if start is not None and end is not None and start >= end:
        problems.append(f"{where}: data.start_time ({d.start_time}) must come before data.end_time ({d.end_time})")
    for split in ("train", "val", "test"):
        key = f"data.{split}_time_range"
        rng = getattr(d, f"{split}_time_range")
        if len(rng) != 2:
            problems.append(f"{where}: {key} must be [start, end], got {rng}")
            continue
        a, b = date(key, rng[0]), date(key, rng[1])
        if a is None or b is None:
            continue
        if a >= b:
            problems.append(f"{where}: {key} starts ({rng[0]}) after it ends ({rng[1]})")
        if start is not None and end is not None and (b < start or a > end):
            problems.append(
                f"{where}: {key} {rng} lies outside data.start_time..data.end_time ({d.start_time}..{d.end_time})"
            )
    if d.source == "csv" and not d.csv.path:
        problems.append(f"{where}: data.csv.path is required when data.source is csv")
    if d.csv.max_gap is not None:
        try:
            pd.Timedelta(d.csv.max_gap)
        except ValueError:
            problems.append(f"{where}: data.csv.max_gap must be a duration such as 3D or 15min, got {d.csv.max_gap!r}")
    t = cfg.training
    for key in ("epochs", "batch_size", "accumulation_steps", "n_train_iter", "n_val_iter"):
        if getattr(t, key) <= 0:
            problems.append(f"{where}: training.{key} must be > 0, got {getattr(t, key)}")
    if t.num_workers < -1:
        problems.append(f"{where}: training.num_workers must be -1 (auto) or >= 0, got {t.num_workers}")
    bad_aug = sorted(set(t.augment) - {"noise", "scale", "time_warp", "slice"})
    if bad_aug:
        problems.append(f"{where}: training.augment has unknown {bad_aug}; use noise, scale, time_warp, slice")
    return problems
