"""The fold plan on real market calendars: holidays, embargoes in bars, contiguous test periods, refits, and the
one-line refusals of plans that do not fit (exit 2, nothing written)."""

from __future__ import annotations

import exchange_calendars as xcals
import pandas as pd
import pytest
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from kronos_cli.core.errors import KronosError
from kronos_cli.walkforward.plan import plan_folds

runner = CliRunner()


def _sessions(name: str, start: str = "2019-01-02", end: str = "2024-12-31") -> pd.DatetimeIndex:
    return pd.DatetimeIndex(xcals.get_calendar(name).sessions_in_range(start, end)).tz_localize(None)


def _cfg(*overrides: str):
    return config.load(
        None,
        [
            "data.start_time=2019-01-02",
            "data.end_time=2024-12-31",
            "data.lookback_window=60",
            "data.predict_window=5",
            "walkforward.start=2023-01-01",
            "walkforward.end=2024-12-31",
            *overrides,
        ],
    )


@pytest.mark.parametrize("exchange", ["XSHG", "XNYS", "XHKG"])
@pytest.mark.parametrize(
    "settings",
    [
        ["walkforward.test_period=3M", "walkforward.val_period=2M"],
        ["walkforward.test_period=40", "walkforward.val_period=20", "walkforward.embargo=3"],
        ["walkforward.test_period=1M", "walkforward.train_window=1Y", "walkforward.refit_every=3"],
    ],
)
def test_folds_start_and_end_on_trading_days_with_embargoes_in_bars(exchange, settings):
    cal = _sessions(exchange)
    cfg = _cfg(*settings)
    plan = plan_folds(cal, cfg.walkforward, cfg.data)
    e = plan.embargo
    assert e == (cfg.walkforward.embargo if cfg.walkforward.embargo is not None else cfg.data.predict_window)
    days = set(cal)
    for f in plan.folds:
        for part in ("train", "val", "test"):
            for d in plan.dates(f, part):
                assert pd.Timestamp(d) in days, (exchange, f, part, d)  # never a holiday or a weekend
        assert f.val[0] - f.train[1] - 1 == e and f.test[0] - f.val[1] - 1 == e  # bars left out, not days
        assert f.bars("train") >= 66 and f.bars("val") >= 6 and f.bars("test") >= 5
        assert f.model_fold == f.index - f.index % cfg.walkforward.refit_every
    tests = [f.test for f in plan.folds]
    assert all(b[0] == a[1] + 1 for a, b in zip(tests, tests[1:]))  # no gap bar, no double bar
    assert plan.dates(plan.folds[0], "test")[0] >= "2023-01-03" and plan.dates(plan.folds[-1], "test")[1] == str(
        cal[-1].date()
    )
    if isinstance(cfg.walkforward.test_period, int):
        assert all(f.bars("test") == 40 for f in plan.folds[:-1])


def test_a_calendar_length_steps_over_holidays():
    """Quarterly folds on the Shanghai calendar begin on the first session of each quarter (after the new-year and
    spring holidays), whatever weekday that is."""
    cal = _sessions("XSHG")
    cfg = _cfg("walkforward.test_period=3M")
    plan = plan_folds(cal, cfg.walkforward, cfg.data)
    starts = [plan.dates(f, "test")[0] for f in plan.folds]
    assert starts == [
        "2023-01-03",
        "2023-04-03",
        "2023-07-03",
        "2023-10-09",
        "2024-01-02",
        "2024-04-01",
        "2024-07-01",
        "2024-10-08",
    ]


def test_a_short_last_period_joins_the_one_before():
    cal = _sessions("XNYS")
    cfg = _cfg("walkforward.test_period=100", "walkforward.end=2024-12-31")
    plan = plan_folds(cal, cfg.walkforward, cfg.data)
    assert plan.folds[-1].test[1] == len(cal) - 1 and plan.folds[-1].bars("test") >= 100


@pytest.mark.parametrize(
    "override, names, smallest",
    [
        ("walkforward.test_period=3", "walkforward.test_period", "the smallest that works is 5 bars"),
        ("walkforward.train_window=30", "walkforward.train_window", "the smallest that works is 66 bars"),
        ("walkforward.val_period=4", "walkforward.val_period", "the smallest that works is 6 bars"),
        ("walkforward.end=2025-06-30", "walkforward.end", "the latest that works is 2024-12-31"),
        ("walkforward.start=2019-02-01", "walkforward.start", "the earliest that works is 2019-"),
        ("walkforward.start=2024-12-20", "walkforward.start", "the latest walkforward.start that works is 2024-11-"),
        ("walkforward.start=2024-12-31 walkforward.end=2024-06-30", "walkforward.end", "zero folds"),
    ],
)
def test_plans_that_do_not_fit_name_the_setting_and_what_works(override, names, smallest):
    cfg = _cfg(*override.split())
    with pytest.raises(KronosError) as err:
        plan_folds(_sessions("XNYS"), cfg.walkforward, cfg.data)
    text = str(err.value)
    assert names in text and smallest in text and "\n" not in text
    assert "--" not in text  # the library names settings, never command-line flags


def test_the_command_refuses_a_plan_that_does_not_fit_and_writes_nothing(market, tmp_path):
    out = tmp_path / "out"
    args = [
        "walkforward",
        f"data.provider_uri={market}",
        f"data.dataset_path={tmp_path / 'ds'}",
        f"output_dir={out}",
        "data.lookback_window=30",
        "data.predict_window=5",
        "data.start_time=2021-01-01",
        "data.end_time=2024-12-31",
        "walkforward.start=2024-01-01",
        "--device",
        "cpu",
    ]
    res = runner.invoke(app, [*args, "walkforward.test_period=2"])
    assert res.exit_code == 2, res.output
    assert "walkforward.test_period" in res.output and "smallest that works is 5 bars" in res.output
    assert not out.exists() and not (tmp_path / "ds").exists()
    res = runner.invoke(app, [*args, "--plan", "--json"])
    assert res.exit_code == 0, res.output
    import json

    folds = json.loads(res.stdout)["folds"]
    assert [f["test"][0] for f in folds] == ["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"]
    assert not out.exists()
