"""Runs kept, listed and compared: every backtest and evaluation in its own directory under `<output_dir>/runs/`."""
