"""Point-in-time proofs on the synthetic market through real pyqlib: the future cannot move a signal or a
position, membership is honoured, splits cannot overlap, labels are unclipped, forecasts ignore batching."""

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
from kronos_cli.core.errors import KronosError
from kronos_cli.data.labels import realised
from kronos_cli.data.prep import prepare
from kronos_cli.data.store import DatasetArrays
from kronos_cli.data.synthetic import write_market
from kronos_cli.data.windows import origin_keys, split_origins
from kronos_cli.forecast.spec import ForecastSpec
from kronos_cli.forecast.windows import forecast_windows
from kronos_cli.model.sampling import Sampling
from kronos_cli.records.runs import load_pair
from tests.conftest import DEMO_SPLITS

runner = CliRunner()
LOOK, PRED = 30, 5
CUT = "2024-09-02"  # the day after which the metamorphic test rewrites history
JOINS = "2024-09-16"  # a stock joins csi300 on this day in the membership test


def _overrides(market: Path, dataset: Path, *extra: str) -> list[str]:
    return [
        f"data.provider_uri={market}",
        f"data.dataset_path={dataset}",
        f"data.lookback_window={LOOK}",
        f"data.predict_window={PRED}",
        *DEMO_SPLITS,
        *extra,
    ]


def _backtest(market: Path, dataset: Path, out: Path, checkpoints) -> Path:
    tok, model = checkpoints
    ov = _overrides(
        market,
        dataset,
        f"output_dir={out}",
        "run_name=pit",
        "backtest.start_time=2024-06-01",
        "backtest.end_time=2024-12-31",
        "backtest.topk=8",
        "backtest.n_drop=2",
        "backtest.sample_count=2",
        "backtest.batch_size=96",
        "backtest.signals=[mean]",
    )
    assert runner.invoke(app, ["prep", *ov]).exit_code == 0
    res = runner.invoke(app, ["backtest", *ov, "--tokenizer", str(tok), "--model", str(model), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    return out / "backtest_results" / "pit"


def _rewrite_bins(feature_dir: Path, cut: int, rng: np.random.Generator, delist: bool) -> None:
    """Change every bar after calendar index `cut` (or delete them all: a delisting)."""
    for f in feature_dir.glob("*.day.bin"):
        data = np.fromfile(f, dtype="<f4")
        start = int(data[0])
        keep = max(0, cut - start + 1)
        if delist:
            data = data[: 1 + keep]
        elif data[1 + keep :].size:
            data[1 + keep :] *= np.exp(rng.normal(0, 0.05, data[1 + keep :].size)).astype("<f4")
        data.tofile(f)


def _end_membership(instruments: Path, symbol: str, day: str) -> None:
    for pool in instruments.glob("*.txt"):
        lines = [ln.split("\t") for ln in pool.read_text().splitlines() if ln]
        kept = [[s, a, day if s == symbol and b > day else b] for s, a, b in lines if not (s == symbol and a > day)]
        pool.write_text("\n".join("\t".join(x) for x in kept) + "\n")


@pytest.mark.slow
def test_the_future_after_a_day_moves_no_signal_or_position_up_to_it(tmp_path, tiny_checkpoints):
    a_market = write_market(tmp_path / "a")
    a = _backtest(a_market, tmp_path / "da", tmp_path / "oa", tiny_checkpoints)
    pos_a = pd.read_csv(a / "positions.csv", parse_dates=["datetime"])
    held = sorted(set(pos_a[pos_a["datetime"] == CUT]["instrument"]))
    assert held, "nothing held on the cut day"

    b_market = tmp_path / "b"
    shutil.copytree(a_market, b_market)
    calendar = pd.DatetimeIndex(pd.read_csv(b_market / "calendars" / "day.txt", header=None)[0])
    cut = int(calendar.get_loc(pd.Timestamp(CUT)))
    rng = np.random.default_rng(1)
    for d in sorted((b_market / "features").iterdir()):
        _rewrite_bins(d, cut, rng, delist=d.name.upper() == held[0])
    _end_membership(b_market / "instruments", held[0], CUT)  # a held stock is delisted after the cut
    b = _backtest(b_market, tmp_path / "db", tmp_path / "ob", tiny_checkpoints)

    sig_a, sig_b = (pd.read_csv(x / "signals.csv", parse_dates=["datetime"]) for x in (a, b))
    before = [s[s["datetime"] <= CUT].drop(columns=["label"]).reset_index(drop=True) for s in (sig_a, sig_b)]
    pd.testing.assert_frame_equal(*before, check_exact=True)
    after = [s[s["datetime"] > CUT].drop(columns=["label"]).reset_index(drop=True) for s in (sig_a, sig_b)]
    assert len(after[0]) != len(after[1]) or not after[0].equals(after[1])  # the change was real
    pos_b = pd.read_csv(b / "positions.csv", parse_dates=["datetime"])
    up_to = [p[p["datetime"] <= CUT].reset_index(drop=True) for p in (pos_a, pos_b)]
    pd.testing.assert_frame_equal(*up_to, check_exact=True)


def _join_late(market: Path, symbol: str, day: str) -> None:
    pool = market / "instruments" / "csi300.txt"
    lines = [ln.split("\t") for ln in pool.read_text().splitlines() if ln]
    pool.write_text("\n".join("\t".join([s, day, b] if s == symbol else [s, a, b]) for s, a, b in lines) + "\n")


@pytest.mark.slow
def test_a_stock_has_no_signal_position_or_ic_term_before_it_joins_the_pool(tmp_path, tiny_checkpoints):
    market = write_market(tmp_path / "m")
    symbol = "SH600000"  # listed throughout, a member from the start until this test moves its entry
    _join_late(market, symbol, JOINS)
    out = _backtest(market, tmp_path / "d", tmp_path / "o", tiny_checkpoints)
    signals = pd.read_csv(out / "signals.csv", parse_dates=["datetime"])
    mine = signals[signals["instrument"] == symbol]
    assert len(mine) and mine["datetime"].min() == pd.Timestamp(JOINS)
    positions = pd.read_csv(out / "positions.csv", parse_dates=["datetime"])
    assert (positions[positions["instrument"] == symbol]["datetime"] > pd.Timestamp(JOINS)).all()
    # the IC of a day is computed over that day's rows of signals.csv: before JOINS the stock has none
    arrays = DatasetArrays(tmp_path / "d")
    sym = arrays.symbols.index(symbol)
    train = np.asarray(arrays.windows["train"])
    assert not (train[:, 1] == sym).any()  # point in time: it never trained as a member before it was one
    ever = prepare(config.load(None, _overrides(market, tmp_path / "e", "data.universe=ever_member")))
    assert (
        ever["splits"]["train"]["windows"]
        > json.loads((tmp_path / "d" / "manifest.json").read_text())["splits"]["train"]["windows"]
    )


def test_overlapping_ranges_are_refused_and_adjacent_ones_leave_an_embargo(market, tmp_path):
    res = runner.invoke(
        app, ["prep", *_overrides(market, tmp_path / "x", "data.val_time_range=[2023-06-01,2024-03-31]")]
    )
    assert res.exit_code == 2
    assert "data.train_time_range" in res.output and "data.val_time_range" in res.output and "overlap" in res.output

    m = prepare(config.load(None, _overrides(market, tmp_path / "d")))  # adjacent ranges (DEMO_SPLITS)
    arrays = DatasetArrays(tmp_path / "d")
    cal = arrays.calendar
    for earlier, later in (("train", "val"), ("val", "test")):
        assert m["splits"][later]["embargoed_bars"] == PRED
        last = np.asarray(arrays.windows[earlier])[:, 0] + m["window"] - 1
        first = np.asarray(arrays.windows[later])[:, 0] + LOOK
        gap = int(np.searchsorted(cal, arrays.timestamps[first].min())) - int(
            np.searchsorted(cal, arrays.timestamps[last].max())
        )
        assert gap > PRED  # at least PRED market bars lie between the two splits' targets
    val = split_origins(arrays, "val")
    label_end = np.asarray(arrays.calpos[val.rows]) + 1 + PRED
    end = int(np.searchsorted(cal, pd.Timestamp(m["splits"]["val"]["end"]).value, side="right")) - 1
    assert label_end.max() <= end  # val's labels stay inside val


def test_a_jump_shows_up_unclipped_in_the_realised_label(tmp_path):
    market = write_market(tmp_path / "m")
    calendar = pd.DatetimeIndex(pd.read_csv(market / "calendars" / "day.txt", header=None)[0])
    jump = int(calendar.get_loc(pd.Timestamp("2024-10-15")))
    for field in ("open", "high", "low", "close"):
        f = market / "features" / "sh600036" / f"{field}.day.bin"
        data = np.fromfile(f, dtype="<f4")
        data[1 + jump - int(data[0]) :] *= np.float32(1.3)
        data.tofile(f)
    prepare(config.load(None, _overrides(market, tmp_path / "d")))
    arrays = DatasetArrays(tmp_path / "d")
    origins = split_origins(arrays, "test")
    names, ns = origin_keys(arrays, origins)
    real = realised(arrays, origins, PRED)
    opens = np.fromfile(market / "features" / "sh600036" / "open.day.bin", dtype="<f4")
    start = int(opens[0])
    for t in (jump - PRED, jump - 2):  # entry (t + 1) before the jump, exit (t + 1 + PRED) after it
        i = np.flatnonzero((names == "SH600036") & (ns == calendar[t].value))[0]
        want = float(opens[1 + t + 1 + PRED - start]) / float(opens[1 + t + 1 - start]) - 1
        assert real.label[i] == pytest.approx(want, rel=1e-6) and real.label[i] > 0.2
        assert np.nanmax(real.path[i]) > 0.2


def test_forecasts_do_not_depend_on_the_batch(prepared, tiny_checkpoints):
    cfg, _ = prepared
    arrays = DatasetArrays(cfg.data.dataset_path)
    origins = split_origins(arrays, "test").subset(np.arange(0, 600, 9))  # 67 windows across symbols
    pair = load_pair(None, *map(str, tiny_checkpoints))
    forecaster = pair.forecaster(ForecastSpec(cfg.data.predict_window, 512, 5.0, device="cpu"))
    sampling = Sampling(temperature=0.6, top_p=0.9, top_k=0, paths=3, seed=100)
    runs = [forecast_windows(forecaster, arrays, origins, sampling, bs).paths for bs in (1, 7, 256)]
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


def test_signals_latest_equal_the_backtest_for_that_day(prepared, tiny_checkpoints, tmp_path):
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    args = [
        f"data.provider_uri={cfg.data.provider_uri}",
        f"data.dataset_path={cfg.data.dataset_path}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        "backtest.sample_count=2",
        "--tokenizer",
        str(tok),
        "--model",
        str(model),
        "--device",
        "cpu",
    ]
    res = runner.invoke(app, ["signals", *args, "--date", "latest", "--json"])
    assert res.exit_code == 0, res.output
    day = json.loads(res.stdout)
    assert day["date"].startswith("2024-12-31") and day["signals"][0]["rank"] == 1
    from kronos_cli.forecast.signals import signal_table
    from kronos_cli.runtime.split_forecasts import sampling_of

    arrays = DatasetArrays(cfg.data.dataset_path)
    origins = split_origins(arrays, "test")
    names, ns = origin_keys(arrays, origins)
    last = origins.subset(np.flatnonzero(ns == ns.max()))
    c = config.load(None, args[:10])
    pair = load_pair(None, str(tok), str(model))
    fc = forecast_windows(pair.forecaster(pair.resolve(c, device="cpu")), arrays, last, sampling_of(c), 64)
    want = signal_table(fc, ns[ns == ns.max()], names[ns == ns.max()], c.backtest.signals, returns=True)
    got = pd.DataFrame(day["signals"]).set_index("instrument").loc[want["instrument"]]
    for name in c.backtest.signals:
        np.testing.assert_array_equal(got[name].to_numpy(np.float32), want[name].to_numpy(np.float32))
    bad = runner.invoke(app, ["signals", *args, "--date", "2024-12-28"])  # a Saturday
    assert bad.exit_code == 2 and "not a trading day" in bad.output
    two = runner.invoke(app, ["signals", *args, "--date", "latest", "--json", "--nproc", "2"])
    assert two.exit_code == 0, two.output
    assert json.loads(two.stdout)["signals"] == day["signals"]  # two workers, each half the pool: the same table


def test_a_pool_file_without_membership_spans_is_refused(market, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(market, copy)
    (copy / "instruments" / "bare.txt").write_text("SH600000\nSZ000004\n")
    res = runner.invoke(app, ["prep", *_overrides(copy, tmp_path / "d", "data.instrument=bare")])
    assert res.exit_code == 2 and "has no membership span" in res.output
    assert len(res.output.strip().splitlines()) == 1
    with pytest.raises(KronosError, match="data.embargo of 200 bars leaves no bar of the val split"):
        prepare(config.load(None, _overrides(market, tmp_path / "e", "data.embargo=200")))
