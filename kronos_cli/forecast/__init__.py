"""Forecasting in prices: normalise bars, run the token model, de-normalise; series from CSV files; devices."""

from kronos_cli.forecast.predictor import Forecast, KronosPredictor, SeriesJob

__all__ = ["Forecast", "KronosPredictor", "SeriesJob"]
