"""kronos-cli: fine-tune, backtest and ship Kronos models for financial candlesticks."""

__version__ = "0.1.0"
