"""The backtest range: ending on the provider's last day is ordinary (an info line); asking for days after the
data ends is a warning."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from kronos_cli import config
from kronos_cli.backtest.qlib_backtest import trading_range
from kronos_cli.data.provider import provider_uri
from kronos_cli.data.qlib_source import init_qlib
from tests.conftest import DEMO_SPLITS


@pytest.fixture
def logged():
    """(level, message) of what the backtest module logs (the CLI's set-up may stop propagation to the root)."""
    records: list[tuple[int, str]] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append((record.levelno, record.getMessage()))
    logger = logging.getLogger("kronos_cli.backtest.qlib_backtest")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.mark.parametrize(
    "end,level",
    [("2024-12-31", logging.INFO), ("2025-03-31", logging.WARNING), ("2024-11-29", None)],
    ids=["the provider's last day", "after the data", "inside the data"],
)
def test_a_warning_only_when_the_configured_range_was_cut(market, logged, end, level):
    cfg = config.load(
        None,
        [f"data.provider_uri={market}", *DEMO_SPLITS, "backtest.start_time=2024-06-03", f"backtest.end_time={end}"],
    )
    init_qlib(provider_uri(cfg.data), cfg.data.region)
    from qlib.data import D  # lazy: qlib is an optional extra

    days = pd.DatetimeIndex(D.calendar(start_time="2024-06-03", end_time="2024-12-31"))
    start, stop, notes = trading_range(cfg, days)
    assert start == days[0] and stop == (days[-2] if level else pd.Timestamp(end))
    assert [lvl for lvl, _ in logged] == ([level] if level else []) and len(notes) == len(logged)
    if level:
        assert "second-to-last bar" in notes[0] and (level == logging.WARNING) == ("is after" in notes[0])
