"""The Kronos model: tokenizer, predictor, forecasting engine and the reference-style predictor API."""

from kronos_cli.model.config import PredictorConfig, TokenizerConfig
from kronos_cli.model.forecast import Forecast, KronosPredictor
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

__all__ = ["Forecast", "Kronos", "KronosPredictor", "KronosTokenizer", "PredictorConfig", "TokenizerConfig"]
