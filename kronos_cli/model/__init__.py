"""The Kronos model in tokens: tokenizer, predictor, KV-cached generation, sampling, checkpoints and presets."""

from kronos_cli.model.config import PredictorConfig, TokenizerConfig
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

__all__ = ["Kronos", "KronosTokenizer", "PredictorConfig", "TokenizerConfig"]
