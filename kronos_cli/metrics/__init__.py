"""Scores of signals, forecasts and portfolios: pure functions of arrays and series, no models, no files."""
