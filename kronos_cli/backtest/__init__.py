"""Backtesting a fine-tuned model: forecasts over the test split, signals, Qlib's portfolio backtest, reports."""
