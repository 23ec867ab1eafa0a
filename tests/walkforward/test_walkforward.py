"""`kronos walkforward` end to end on synthetic markets with tiny models: the planted signal found out of sample
fold after fold, nothing found where nothing is planted, point in time (a poisoned future changes no fold's
forecasts), resumable (an interruption between folds or inside a fold's training ends where an uninterrupted run
ends), idempotent (a rerun does nothing), and a fold that reuses a model forecasts as that model's checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from kronos_cli.data.synthetic import MarketSpec, write_market
from kronos_cli.records.runs import load_pair, walkforward_dir
from kronos_cli.runtime.split_forecasts import forecast_split, open_dataset, split_windows
from kronos_cli.train.state import Observer
from kronos_cli.walkforward import folds as folds_module
from kronos_cli.walkforward.folds import Training, fold_config, plan_models
from kronos_cli.walkforward.run import run_walkforward, walkforward_plan

runner = CliRunner()
TINY = [
    "data.lookback_window=30",
    "data.predict_window=5",
    "data.max_context=64",
    "data.start_time=2022-01-01",
    "data.end_time=2024-12-31",
    "walkforward.start=2024-04-01",
    "walkforward.end=2024-12-31",
    "walkforward.test_period=3M",
    "walkforward.val_period=2M",
    "walkforward.base=previous",
    "model.tokenizer=preset:tokenizer-tiny",
    "model.predictor=preset:tiny",
    "training.epochs=1",
    "training.n_train_iter=40",
    "training.n_val_iter=2",
    "training.batch_size=32",
    "training.tokenizer_learning_rate=0.001",
    "training.predictor_learning_rate=0.001",
    "backtest.sample_count=8",
    "backtest.topk=10",
    "backtest.n_drop=2",
]


def _overrides(market: Path, root: Path, *extra: str) -> list[str]:
    return [
        f"data.provider_uri={market}",
        f"data.dataset_path={root / 'ds'}",
        f"output_dir={root / 'out'}",
        "run_name=wf",
        *TINY,
        *extra,
    ]


def _walkforward(market: Path, root: Path, *extra: str) -> dict:
    res = runner.invoke(app, ["walkforward", *_overrides(market, root, *extra), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _signals(result: dict) -> pd.DataFrame:
    return pd.read_csv(result["outputs"]["signals"])


@pytest.fixture(scope="module")
def planted(market, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("planted")
    return root, _walkforward(market, root)


@pytest.mark.slow
def test_the_planted_signal_is_found_out_of_sample_fold_after_fold(planted):
    _, result = planted
    assert len(result["folds"]) == 3
    model = next(m for m in result["stitched"]["models"] if m["label"] == "fine-tuned")
    assert model["ic"]["IC_t"] > 3
    wins = {(w["against"], w["metric"]): w for w in result["wins"]}
    assert wins[("last close", "CRPS")]["wins"] >= 2  # most folds
    print({k: (w["wins"], w["folds"]) for k, w in wins.items()}, [f["scores"]["fine-tuned"] for f in result["folds"]])
    days = pd.to_datetime(_signals(result)["datetime"]).unique()
    assert result["backtest"]["days"] == len(days)
    per_fold = [f["windows"] for f in result["folds"]]
    assert sum(per_fold) == result["stitched"]["windows"]
    text = Path(result["outputs"]["report"]).read_text()
    assert "Walk-forward by fold" in text and "Folds won by the refitted model" in text
    for plot in ("returns_plot", "ic_by_fold", "mase_by_fold", "crps_by_fold"):
        assert Path(result["outputs"][plot]).is_file()


@pytest.mark.slow
def test_the_stitched_record_has_no_gap_day_and_no_double_day(planted, market):
    _, result = planted
    signals = _signals(result)
    assert not signals.duplicated(["datetime", "instrument"]).any()
    cal = pd.to_datetime(Path(market, "calendars", "day.txt").read_text().split())
    span = cal[(cal >= "2024-04-01") & (cal <= "2024-12-31")]
    assert set(pd.to_datetime(signals["datetime"]).unique()) == set(span)
    for f in result["folds"]:
        mine = pd.to_datetime(signals.loc[signals["fold"] == f["fold"], "datetime"])
        assert mine.min() == pd.Timestamp(f["test"][0]) and mine.max() == pd.Timestamp(f["test"][1])


@pytest.mark.slow
def test_a_rerun_does_nothing(planted, market):
    root, first = planted
    results = Path(first["outputs"]["results"])
    before = results.stat().st_mtime_ns
    again = _walkforward(market, root)
    assert again["up_to_date"] is True and results.stat().st_mtime_ns == before
    assert again["stitched"]["models"] == first["stitched"]["models"]


class _KilledAtStep(Observer):
    """Kills the process (KeyboardInterrupt) at optimiser step `step` of the `nth` stage run that reaches it."""

    reached = 0

    def __init__(self, step: int, nth: int):
        self.step, self.nth = step, nth

    def on_step(self, event) -> None:
        if event.step == self.step:
            type(self).reached += 1
            if type(self).reached == self.nth:
                raise KeyboardInterrupt


@pytest.mark.slow
def test_an_interrupted_walkforward_resumes_to_the_uninterrupted_result(planted, market, tmp_path, monkeypatch):
    """Killed inside the second fold's predictor training (after a checkpoint at step 20), then between the second
    and third folds: each rerun continues where it stopped, and the end is the uninterrupted run's, forecast for
    forecast."""
    _, whole = planted
    cfg = config.load(None, _overrides(market, tmp_path))
    # fold 1 trains the tokenizer, then its predictor; the third run to reach step 25 is fold 2's predictor
    killer = Training("cpu", make_observer=lambda ctx: _KilledAtStep(25, 3), checkpoint_every=10)
    with pytest.raises(KeyboardInterrupt):
        run_walkforward(cfg, killer)
    last = tmp_path / "out" / "walkforward" / "wf" / "folds" / "models" / "fold02" / "predictor" / "checkpoints"
    assert json.loads((last / "last" / "trainer_state.json").read_text())["step"] == 20

    real = folds_module.run_stage

    def dies_before_fold_three(fcfg, options, *args):
        if fcfg.run_name == "fold03":
            raise KeyboardInterrupt
        return real(fcfg, options, *args)

    monkeypatch.setattr(folds_module, "run_stage", dies_before_fold_three)
    with pytest.raises(KeyboardInterrupt):
        run_walkforward(cfg, Training("cpu"))
    monkeypatch.setattr(folds_module, "run_stage", real)
    resumed = _walkforward(market, tmp_path)
    assert [f["ran"] for f in resumed["folds"]] == [[], [], ["train-predictor"]]  # only what was left
    pd.testing.assert_frame_equal(_signals(resumed), _signals(whole))
    assert resumed["stitched"]["models"] == whole["stitched"]["models"]


def _poison(market: Path, out: Path, after: str) -> Path:
    """A copy of `market` whose bars after `after` are NaN for half the stocks and 1000x for the others."""
    target = Path(shutil.copytree(market, out))
    cal = pd.to_datetime((target / "calendars" / "day.txt").read_text().split())
    for i, stock in enumerate(sorted((target / "features").iterdir())):
        for field in ("open", "close", "high", "low", "volume", "vwap"):
            path = stock / f"{field}.day.bin"
            raw = np.fromfile(path, dtype="<f4")
            first = int(raw[0])
            days = cal[first : first + len(raw) - 1]
            later = np.flatnonzero(days > pd.Timestamp(after)) + 1
            raw[later] = np.nan if i % 2 else raw[later] * 1000
            raw.tofile(path)
    return target


@pytest.mark.slow
def test_a_poisoned_future_changes_no_fold_forecast(planted, market, tmp_path):
    """Bars after the first fold's test period, NaN or 1000x: that fold's dataset, training and forecasts are the
    clean run's, signal for signal."""
    _, clean = planted
    end = clean["folds"][0]["test"][1]
    poisoned = _poison(market, tmp_path / "market", end)
    result = _walkforward(poisoned, tmp_path, f"walkforward.end={end}")
    assert len(result["folds"]) == 1
    mine, theirs = _signals(result), _signals(clean)
    theirs = theirs[theirs["fold"] == 1].reset_index(drop=True)
    cols = ["datetime", "instrument", "last", "mean", "max", "min"]
    pd.testing.assert_frame_equal(mine[cols], theirs[cols])
    assert not mine["label"].equals(theirs["label"])  # the poison is there: the last labels read it


@pytest.mark.slow
def test_nothing_is_found_where_nothing_is_planted(tmp_path):
    market = write_market(tmp_path / "none", MarketSpec(signal="none", start="2022-01-01"))
    result = _walkforward(market, tmp_path, "walkforward.start=2024-07-01")
    for m in result["stitched"]["models"]:
        t = m["ic"]["IC_t"]
        assert t is None or abs(t) <= 3, (m["label"], t)


@pytest.mark.slow
def test_one_series_walks_forward_with_skill_over_time_and_the_sign_strategy(market, tmp_path):
    """The most common case, one series: every fold scored over time (no cross-section: the IC is not defined,
    the time-series correlation stands in) and one sign-strategy backtest over the stitched span."""
    extra = [
        "data.instrument=[SH600000]",
        "training.select_by=val_ic",
        "training.n_train_iter=10",
        "training.batch_size=8",
    ]
    result = _walkforward(market, tmp_path, *extra)
    assert len(result["folds"]) == 3 and result["stitched"]["symbols"] == 1
    model = next(m for m in result["stitched"]["models"] if m["label"] == "fine-tuned")
    assert model["ic"]["IC"] is None and -1 <= model["time_series"]["corr"] <= 1
    assert sum(f["windows"] for f in result["folds"]) == result["stitched"]["windows"]
    days = pd.to_datetime(_signals(result)["datetime"]).unique()
    assert result["backtest"]["days"] == len(days)
    assert "buy and hold" in Path(result["outputs"]["report"]).read_text()


@pytest.mark.slow
def test_a_fold_that_reuses_a_model_trains_nothing_and_forecasts_as_that_model(market, tmp_path):
    """refit_every 2: the second fold trains nothing and forecasts its test period with the first fold's model,
    exactly as that model's checkpoint, loaded afresh and forecasting into a cache of its own, does."""
    result = _walkforward(market, tmp_path, "walkforward.start=2024-07-01", "walkforward.refit_every=2")
    assert [f["ran"] for f in result["folds"]] == [["prep", "train-tokenizer", "train-predictor"], ["prep"]]
    assert [f["model_of_fold"] for f in result["folds"]] == [1, 1]
    cfg = config.load(None, _overrides(market, tmp_path, "walkforward.start=2024-07-01", "walkforward.refit_every=2"))
    plan, root = walkforward_plan(cfg), walkforward_dir(cfg)
    first = plan_models(cfg, plan, root)[0]
    fcfg = fold_config(cfg, plan, plan.folds[1], root)
    fcfg.output_dir = str(tmp_path / "afresh")  # its own forecast cache: forecast again, not read back
    arrays = open_dataset(fcfg)
    pair = load_pair(None, first.tokenizer, first.predictor)
    afresh = forecast_split(fcfg, arrays, split_windows(fcfg, arrays, "test"), pair, "cpu").signal_table(["last"])
    assert afresh["last"].notna().all()
    mine = _signals(result).query("fold == 2")[["datetime", "instrument", "last"]]
    afresh["datetime"] = afresh["datetime"].astype(str)
    joined = mine.merge(afresh, on=["datetime", "instrument"], suffixes=("", "_afresh"))
    assert len(joined) == len(mine) > 0
    # signals.csv holds each float32 signal in its shortest form, which reads back to the same float32
    np.testing.assert_array_equal(joined["last"].to_numpy(np.float32), joined["last_afresh"].to_numpy(np.float32))
