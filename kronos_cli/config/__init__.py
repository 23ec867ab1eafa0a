"""Typed YAML configs: the schema (one dataclass per section), one loader with dotted overrides, and checks
that report every problem at once."""

from kronos_cli.config.load import ConfigError, dump, load, parse_override
from kronos_cli.config.schema import (
    BacktestConfig,
    CometConfig,
    Config,
    CsvConfig,
    DataConfig,
    EvaluateConfig,
    LoggingConfig,
    MlflowConfig,
    ModelConfig,
    TrainingConfig,
    WalkForwardConfig,
    section_hash,
)

__all__ = [
    "BacktestConfig",
    "CometConfig",
    "Config",
    "ConfigError",
    "CsvConfig",
    "DataConfig",
    "EvaluateConfig",
    "LoggingConfig",
    "MlflowConfig",
    "ModelConfig",
    "TrainingConfig",
    "WalkForwardConfig",
    "dump",
    "load",
    "parse_override",
    "section_hash",
]
