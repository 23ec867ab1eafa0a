"""Capacity and cost levels: rerun from the same signals (no model call once the backtest's own forecasts are
made), reported in text, JSON and plots; the halving capital and break-even cost; bad levels refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from kronos_cli.backtest import run as backtest_run
from kronos_cli.backtest.sensitivity import Level, break_even_bps, halving_capital
from kronos_cli.cli.app import app
from kronos_cli.forecast.predictor import KronosPredictor
from tests.conftest import backtest_args

runner = CliRunner()


def _level(value: float, excess: float) -> Level:
    return Level(value, 0.0, 0.0, 0.0, excess, 0.0, 0.0, 1.0, 0, 0, 0, 0, 0.0)


def test_the_capital_where_the_excess_return_halves_is_interpolated_on_log_capital():
    levels = [_level(1e6, 0.20), _level(1e7, 0.15), _level(1e8, 0.05), _level(1e9, -0.1)]
    assert halving_capital(levels) == pytest.approx(10 ** (7 + 0.5))  # 0.10 lies halfway between 0.15 and 0.05
    assert halving_capital(levels[:2]) is None  # never halves within the levels
    assert halving_capital([_level(1e6, -0.01), _level(1e7, -0.02)]) is None  # no excess return to halve


def test_the_break_even_cost_takes_the_summed_return_before_cost_to_zero():
    bars = pd.DataFrame({"return": [0.01, 0.0, 0.002], "bench": [0.004, 0.0, 0.0], "turnover": [1.0, 0.5, 0.5]})
    be = break_even_bps(bars)
    assert be["excess"] == pytest.approx(0.008 / 2.0 * 10_000) and be["absolute"] == pytest.approx(60.0)
    assert (bars["return"] - bars["bench"] - be["excess"] / 10_000 * bars["turnover"]).sum() == pytest.approx(0)


@pytest.fixture
def bt(prepared, tiny_checkpoints, tmp_path):
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    return [*backtest_args(cfg, tok, model, tmp_path / "out"), "backtest.batch_size=2048"]


@pytest.mark.slow
def test_capacity_and_cost_levels_rerun_only_the_portfolio(bt, tmp_path, monkeypatch):
    calls, at = [], {}
    forecast = KronosPredictor.forecast_normalised

    def counted(self, *args, **kwargs):
        calls.append(1)
        return forecast(self, *args, **kwargs)

    def watched(*args, **kwargs):  # the model calls made before and while the levels run
        at["start"] = len(calls)
        out = levels(*args, **kwargs)
        at["end"] = len(calls)
        return out

    levels = backtest_run.sensitivity
    monkeypatch.setattr(KronosPredictor, "forecast_normalised", counted)
    monkeypatch.setattr(backtest_run, "sensitivity", watched)
    args = [*bt, "--capacity", "1e6,1e8,1e10", "--cost-multipliers", "0x,1x,2x,4x", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert at["start"] > 0 and at["end"] == at["start"]  # forecasts first, then no model call at any level
    s = json.loads(res.stdout)["sensitivity"]
    assert s["signal"] == "last" and [x["value"] for x in s["capacity"]] == [1e6, 1e8, 1e10]
    first = json.loads(res.stdout)["portfolio"]["last"]["with_cost"]
    own = s["capacity"][1]  # backtest.account = 1e8: the backtest's own run, not a rerun
    assert own["seconds"] == 0 and own["annualized_return"] == pytest.approx(first["annualized_return"])
    assert s["capacity"][2]["fill_rate"] < s["capacity"][0]["fill_rate"]  # 1e10 outgrows the volume cap
    assert s["capacity"][2]["volume_capped"] > 0
    totals = [x["total_return"] for x in s["costs"]]
    assert totals[0] > totals[-1] and s["costs"][0]["value"] == 0  # 4x the costs earns less than none
    # (not monotonic in between: costs change the cash, so later orders and their volume-capped fills)
    assert set(s["break_even_bps"]) == {"excess", "absolute"}
    out = tmp_path / "out" / "backtest_results" / "bt"
    text = (out / "analysis_report.txt").read_text()
    assert "Capacity of last" in text and "Cost sensitivity of last" in text and "Fills:" in text
    for plot in ("capacity_plot.png", "cost_plot.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "backtest_results.json").read_text())
    assert results["fills"]["last"]["orders"] > 0 and results["sensitivity"]["costs"][1]["seconds"] == 0

    calls.clear()
    again = runner.invoke(app, args)  # forecasts from the cache: no model call at all
    assert again.exit_code == 0 and not calls
    repeat = json.loads(again.stdout)["sensitivity"]
    for a, b in zip(s["capacity"] + s["costs"], repeat["capacity"] + repeat["costs"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--capacity", "1e6,lots"], "--capacity takes numbers separated by commas"),
        (["--capacity", "0"], "--capacity must hold capital levels above 0"),
        (["--cost-multipliers", "-1"], "--cost-multipliers must hold multiples of the costs in [0, 100]"),
        (["backtest.volume_limit=1.5"], "backtest.volume_limit must be a share of a bar's volume in [0, 1]"),
        (["backtest.impact_cost=-0.1"], "backtest.impact_cost must be a fraction of the traded value"),
        (["backtest.account=-5"], "backtest.account must be a capital above 0"),
        (["--capacity", "1e6,100"], "backtest.capacity 100 is below one lot of the cheapest symbol"),
    ],
)
def test_bad_levels_are_one_line_and_exit_2(bt, extra, message):
    res = runner.invoke(app, [*bt, *extra])
    assert res.exit_code == 2 and message in res.output, res.output


def test_levels_in_a_config_are_numbers_as_people_write_them():
    from kronos_cli import config

    b = config.load(None, ["backtest.capacity=[1e6, 1e+07, 2.5E8]", "backtest.cost_multipliers=[0, 1, 2, 4]"]).backtest
    assert b.capacity == [1e6, 1e7, 2.5e8] and b.cost_multipliers == [0.0, 1.0, 2.0, 4.0]  # YAML 1.1 reads 1e6 as text
