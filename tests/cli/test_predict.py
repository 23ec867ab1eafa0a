"""`kronos predict` end to end: CliRunner for the options and bad inputs, one real subprocess."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from tests.conftest import make_bars
from tests.market.test_barfile_timestamps import DAYS, EPOCH_S, FORMATS, write_bars

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def ck(tiny_checkpoints):
    tok, model = tiny_checkpoints
    return ["--tokenizer", tok, "--model", model, "--device", "cpu"]


def test_predict_writes_csv_with_quantiles_and_plot(tmp_path, bars_csv, ck):
    out, png = tmp_path / "fc.csv", tmp_path / "fc.png"
    res = _run(
        "predict",
        bars_csv,
        *ck,
        "--pred-len",
        6,
        "--samples",
        5,
        "--seed",
        3,
        "--quantiles",
        "0.1,0.9",
        "--output",
        out,
        "--plot",
        png,
    )
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out, parse_dates=["timestamps"])
    assert len(table) == 6
    assert {"close", "close_q10", "close_q90", "volume_q90"} <= set(table.columns)
    assert (table["close_q10"] <= table["close_q90"]).all()
    assert table["timestamps"].dt.day_of_week.max() <= 4  # business-day bars stay on weekdays
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_prints_csv_to_stdout_when_no_output(bars_csv, ck):
    res = _run("predict", bars_csv, *ck, "--pred-len", 3, "--top-k", 1)
    assert res.exit_code == 0
    table = pd.read_csv(io.StringIO(res.stdout))
    assert list(table.columns) == ["timestamps", "open", "high", "low", "close", "volume", "amount"]


@pytest.mark.parametrize("calendar", [None, "XSHG"])
def test_a_share_minute_forecasts_skip_the_lunch_break_and_the_night(tmp_path, ck, calendar):
    from kronos_cli.market.sessions import parse_freq, session_grid

    grid = session_grid("XSHG", parse_freq("5min"), "end").bars(pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-08"))
    hist = make_bars(len(grid) - 30).assign(timestamps=grid[: len(grid) - 30])  # ends Friday 11:00
    path = tmp_path / "a_share_5min.csv"
    hist.to_csv(path, index=False)
    flags = ["--calendar", calendar] if calendar else []
    res = _run("predict", path, *ck, "--pred-len", 32, "--top-k", 1, *flags)
    assert res.exit_code == 0, res.output
    stamps = pd.to_datetime(pd.read_csv(io.StringIO(res.stdout))["timestamps"])
    assert list(stamps[:8].dt.strftime("%H:%M")) == [
        "11:05",
        "11:10",
        "11:15",
        "11:20",
        "11:25",
        "11:30",
        "13:05",
        "13:10",
    ]
    assert stamps.iloc[-2] == pd.Timestamp("2024-01-08 09:35")  # after Friday's close, Monday's first bar


def test_lookback_above_max_context_warns_and_truncates(bars_csv, ck):
    res = _run("predict", bars_csv, *ck, "--pred-len", 2, "--lookback", 150, "--max-context", 100)
    assert res.exit_code == 0
    assert "exceeds the model's max_context 100" in res.output


def _write(tmp_path, df, name="bad.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def _nth(d: pd.DataFrame, col: str, value) -> pd.DataFrame:
    """Row 7 of the frame (line 9 of the file: the header is line 1) set to `value`."""
    d = d.copy()
    d[col] = d[col].astype(object)
    d.loc[d.index[7], col] = value
    return d


BAD_INPUTS = {
    "missing column": (lambda d: d.drop(columns="low"), "lacks the column(s) low"),
    "unparsable timestamps": (
        lambda d: _nth(d, "timestamps", "yesterday"),
        "line 9: timestamp 'yesterday' is not a date",
    ),
    "unsorted": (lambda d: d.iloc[::-1], "line 3: timestamp"),
    "duplicate": (lambda d: pd.concat([d.iloc[:5], d.iloc[4:]]), "line 7: duplicate timestamp"),
    "nan": (lambda d: _nth(d, "close", np.nan), "line 9, column 'close': is empty"),
    "text": (lambda d: _nth(d, "close", "1,2"), "line 9, column 'close': '1,2' is not a number"),
    "inf": (lambda d: _nth(d, "volume", np.inf), "line 9, column 'volume': is infinite"),
    "negative price": (lambda d: _nth(d, "low", -3.5), "line 9, column 'low': -3.5 is not a positive price"),
    "negative volume": (lambda d: _nth(d, "volume", -1.0), "line 9, column 'volume': -1 is negative"),
    "too short": (lambda d: d.iloc[:5], "5 bars; a forecast needs at least 16"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_csv_gets_one_line_and_exit_2(tmp_path, bars, ck, case):
    mutate, message = BAD_INPUTS[case]
    res = _run("predict", _write(tmp_path, mutate(bars)), *ck, "--pred-len", 2)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--lookback", "500"], "fewer than --lookback 500"),
        (["--pred-len", "0"], "--pred-len must be > 0"),
        (["--quantiles", "0.1,1.5"], "strictly between 0 and 1"),
        (["--calendar", "XSHE2"], "--calendar 'XSHE2' is not a known calendar; use one of infer, 24/7"),
    ],
)
def test_bad_options(bars_csv, ck, args, message):
    res = _run("predict", bars_csv, *ck, *args)
    assert res.exit_code == 2 and message in res.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--samples", "0"], "--samples must be >= 1, got 0"),
        (["--top-k", "-1"], "--top-k must be >= 0, got -1"),
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    ],
)
def test_bad_sampling_options_fail_before_any_model_loads(tmp_path, bars_csv, args, message):
    res = _run("predict", bars_csv, "--tokenizer", tmp_path / "none", "--model", tmp_path / "none", *args)
    assert res.exit_code == 2 and message in res.output, res.output  # not the missing model's error


def test_a_directory_a_semicolon_file_and_blank_lines(tmp_path, bars, ck):
    res = _run("predict", tmp_path, *ck)
    assert res.exit_code == 2 and "is a directory" in res.output
    semi = tmp_path / "semi.csv"
    bars.to_csv(semi, index=False, sep=";")
    res = _run("predict", semi, *ck, "--pred-len", 2, "--top-k", 1)
    assert res.exit_code == 0, res.output  # the delimiter is read from the header line
    blank = tmp_path / "blank.csv"
    text = bars.to_csv(index=False).splitlines()
    blank.write_text("\n".join(text[:5] + [""] + text[5:]) + "\n")
    res = _run("predict", blank, *ck)
    assert res.exit_code == 2 and "line 6: empty timestamp" in res.output


def test_missing_checkpoint_and_missing_csv(tmp_path, bars_csv, tiny_checkpoints):
    tok, _ = tiny_checkpoints
    res = _run("predict", bars_csv, "--tokenizer", tok, "--model", tmp_path / "none", "--device", "cpu")
    assert res.exit_code == 2 and "no checkpoint directory" in res.output
    res = _run("predict", tmp_path / "none.csv", "--tokenizer", tok, "--model", tok)
    assert res.exit_code == 2 and "no CSV file" in res.output


def test_corrupt_safetensors(tmp_path, bars_csv, tiny_checkpoints):
    import shutil

    tok, model = tiny_checkpoints
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    res = _run("predict", bars_csv, "--tokenizer", tok, "--model", broken)
    assert res.exit_code == 2 and "not a readable safetensors" in res.output


def test_mismatched_bit_widths(tmp_path, bars_csv, tiny_checkpoints):
    from kronos_cli.model import Kronos
    from kronos_cli.model.config import PredictorConfig

    tok, _ = tiny_checkpoints
    Kronos(PredictorConfig(s1_bits=5, s2_bits=5, n_layers=1, d_model=16, n_heads=2, ff_dim=16)).save_pretrained(
        tmp_path / "m5"
    )
    res = _run("predict", bars_csv, "--tokenizer", tok, "--model", tmp_path / "m5")
    assert res.exit_code == 2 and "do not fit" in res.output


def test_cuda_on_a_machine_without_it(bars_csv, tiny_checkpoints):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    tok, model = tiny_checkpoints
    res = _run("predict", bars_csv, "--tokenizer", tok, "--model", model, "--device", "cuda:0")
    assert res.exit_code == 2 and "CUDA is not available" in res.output


def test_version_and_help():
    from kronos_cli import __version__

    assert __version__ in _run("--version").output
    res = _run("predict", "--help")
    assert res.exit_code == 0 and "--quantiles" in res.output


def test_real_subprocess_pipes_csv(bars_csv, tiny_checkpoints):
    tok, model = tiny_checkpoints
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kronos_cli",
            "predict",
            str(bars_csv),
            "--tokenizer",
            str(tok),
            "--model",
            str(model),
            "--pred-len",
            "4",
            "--seed",
            "1",
            "--samples",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(io.StringIO(proc.stdout))
    assert len(table) == 4 and np.isfinite(table["close"]).all()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "kronos_cli",
            "predict",
            str(bars_csv),
            "--tokenizer",
            str(tok),
            "--model",
            str(model),
            "--pred-len",
            "-1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: --pred-len must be > 0, got -1"]


def test_env_json():
    res = _run("env", "--json")
    assert res.exit_code == 0
    assert "torch" in json.loads(res.stdout)


def test_the_model_records_its_context_and_lookback(tmp_path, tiny_pair):
    """A model trained with context 128 and lookback 60 is fed the last 60 of 300 bars by default, not all of
    them; a model that records nothing gets every bar up to its context, with a warning when the file is longer."""
    from tests.conftest import make_bars

    tok, model = tiny_pair
    tok.save_pretrained(tmp_path / "tok")
    model.save_pretrained(tmp_path / "ft", {"max_context": 128, "lookback_window": 60})
    model.save_pretrained(tmp_path / "plain")
    long_csv = _write(tmp_path, make_bars(300), "long.csv")
    ft = _run(
        "predict",
        long_csv,
        "--tokenizer",
        tmp_path / "tok",
        "--model",
        tmp_path / "ft",
        "--pred-len",
        2,
        "--device",
        "cpu",
    )
    assert ft.exit_code == 0 and "using the last 60 bars, the lookback the model was trained with" in ft.output
    assert "context 128" in ft.output
    plain = _run(
        "predict",
        long_csv,
        "--tokenizer",
        tmp_path / "tok",
        "--model",
        tmp_path / "plain",
        "--pred-len",
        2,
        "--max-context",
        128,
        "--device",
        "cpu",
    )
    assert plain.exit_code == 0
    assert plain.output.count("the bars given are 300, more than the model's context of 128") == 1


@pytest.mark.parametrize("name", list(FORMATS))
def test_predict_reads_each_timestamp_format(tmp_path, ck, name):
    """Daily bars ending Friday 10 Feb 2023, written each way: the forecast starts on Monday 13 Feb."""
    column, written, expected = FORMATS[name]
    write_bars(tmp_path / "bars.csv", column, written)
    res = _run("predict", tmp_path / "bars.csv", *ck, "--pred-len", 2, "--top-k", 1)
    assert res.exit_code == 0, res.output
    stamps = pd.to_datetime(pd.read_csv(io.StringIO(res.stdout))["timestamps"])
    assert stamps.iloc[0].normalize() == (expected[-1] + pd.offsets.BDay(1)).normalize()


def test_predict_refuses_an_ambiguous_day_month_order_and_takes_the_format(tmp_path, ck):
    """Hourly bars of one day written 02/01/2023 09:00: 2 January or 1 February; the file cannot say which."""
    path = tmp_path / "bars.csv"
    write_bars(path, "date", pd.date_range("2023-01-02 00:00", periods=24, freq="h").strftime("%d/%m/%Y %H:%M"))
    res = _run("predict", path, *ck, "--pred-len", 2)
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "set --timestamp-format to '%d/%m/%Y %H:%M' (day first) or '%m/%d/%Y %H:%M' (month first)" in res.output
    for fmt, first in [("%d/%m/%Y %H:%M", "2023-01-03"), ("%m/%d/%Y %H:%M", "2023-02-02")]:
        res = _run("predict", path, *ck, "--pred-len", 2, "--top-k", 1, "--timestamp-format", fmt)
        assert res.exit_code == 0, res.output
        assert pd.read_csv(io.StringIO(res.stdout))["timestamps"].iloc[0].startswith(first)


def test_predict_names_the_timestamp_column(tmp_path, ck):
    path = tmp_path / "bars.csv"
    write_bars(path, "Opened", EPOCH_S)
    res = _run("predict", path, *ck, "--pred-len", 2)
    assert res.exit_code == 2 and "or name yours with --timestamp-column" in res.output
    res = _run("predict", path, *ck, "--pred-len", 2, "--top-k", 1, "--timestamp-column", "Opened")
    assert res.exit_code == 0, res.output
    assert pd.read_csv(io.StringIO(res.stdout))["timestamps"].iloc[0] == "2023-02-13"
    res = _run("predict", path, *ck, "--timestamp-column", "When")
    assert res.exit_code == 2 and "has no column 'When' (--timestamp-column)" in res.output


def test_real_subprocess_reads_day_first_dates_and_epoch_seconds(tmp_path, tiny_checkpoints):
    """The reported files: sorted 02/01/2023-style dates, and epoch seconds in a `time` column."""
    tok, model = tiny_checkpoints
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    write_bars(tmp_path / "day_first.csv", "date", DAYS.strftime("%d/%m/%Y"))
    write_bars(tmp_path / "epoch.csv", "time", EPOCH_S)
    for name in ("day_first.csv", "epoch.csv"):
        proc = subprocess.run(
            [sys.executable, "-m", "kronos_cli", "predict", str(tmp_path / name), "--tokenizer", str(tok)]
            + ["--model", str(model), "--pred-len", "2", "--top-k", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert pd.read_csv(io.StringIO(proc.stdout))["timestamps"].tolist() == ["2023-02-13", "2023-02-14"]


def test_a_huge_field_is_not_echoed_into_the_error(tmp_path, ck):
    """A 5 MB field in the close column: the error quotes a few characters of it, not megabytes."""
    rows = ["timestamps,open,high,low,close"]
    rows += [f"2024-01-{d:02d},10,11,9,10" for d in range(1, 20)]
    rows.append("2024-01-20,10,11,9," + "9" * 2_000_000 + "x" * 3_000_000)
    csv = tmp_path / "huge.csv"
    csv.write_text("\n".join(rows) + "\n")
    res = _run("predict", csv, *ck)
    assert res.exit_code == 2 and "is not a number" in res.output and len(res.output) < 3000, res.output[:300]


def test_bars_that_are_not_candles_are_repaired_and_counted_or_refused(tmp_path, bars, ck):
    """High below the close (or below the low) used to be forecast from as given, silently."""
    bad = bars.copy()
    bad.loc[bad.index[-3], "high"] = bad["low"].iloc[-3] * 0.9  # high < low < open/close
    bad.loc[bad.index[-10], "low"] = bad["high"].iloc[-10] * 1.1  # low above the body
    path = _write(tmp_path, bad)
    res = _run("predict", path, *ck, "--pred-len", 2, "--lookback", 40, "--seed", 1, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["input_bars_repaired"] == 2
    assert "2 input bar(s) had a high below the open or close" in res.output
    good = json.loads(_run("predict", _write(tmp_path, bars, "good.csv"), *ck, "--pred-len", 2, "--json").stdout)
    assert good["input_bars_repaired"] == 0
    refused = _run("predict", path, *ck, "--pred-len", 2, "--lookback", 40, "--bad-candles", "refuse")
    assert refused.exit_code == 2 and "Traceback" not in refused.output, refused.output
    last = refused.output.strip().splitlines()[-1]  # after the INFO line naming the model: the one-line error
    assert "2 bar(s) whose high is below the open or close or whose low is above them (first: bar 30" in last
    wrong = _run("predict", path, *ck, "--bad-candles", "fix")
    assert wrong.exit_code == 2 and "--bad-candles must be one of repair, refuse" in wrong.output


@pytest.fixture(scope="module")
def markets(tmp_path_factory):
    from kronos_cli.data.synthetic_csv import write_csv_market

    root = tmp_path_factory.mktemp("markets")
    return {m: write_csv_market(root / m, m, symbols=4) for m in ("fx1h", "usdaily")}


def _until(tmp_path, source, last: str, first: str = "1900-01-01"):
    """The bars of one file of a synthetic market from `first` to `last`, as a CSV of their own."""
    d = pd.read_csv(source)
    when = pd.to_datetime(d.timestamps)
    path = tmp_path / source.name
    path.parent.mkdir(exist_ok=True)
    d[(when >= pd.Timestamp(first)) & (when <= pd.Timestamp(last))].to_csv(path, index=False)
    return path


@pytest.mark.parametrize("flags", [[], ["--calendar", "forex"], ["--calendar", "24/5"]])
def test_fx_forecasts_fall_only_in_open_hours(tmp_path, ck, markets, flags):
    """EURUSD bars (UTC, the synthetic FX market) ending on Friday afternoon 8 March 2024, the last week of US
    winter time: the forecast runs to Friday's 22:00 UTC close, skips the weekend and opens on Sunday at 21:00 UTC,
    the US having changed its clocks that morning. Seen in the issue: Friday night and all of Sunday."""
    from tests.market.test_sessions import forex_hours

    path = _until(tmp_path, markets["fx1h"] / "EURUSD.csv", "2024-03-08 15:00")
    out = tmp_path / "f.csv"
    res = _run("predict", path, *ck, "--pred-len", 30, "--top-k", 1, "--lookback", 48, "--json", "-o", out, *flags)
    assert res.exit_code == 0, res.output
    stamps = pd.DatetimeIndex(pd.read_csv(out, parse_dates=["timestamps"])["timestamps"])
    assert stamps.isin(forex_hours("2024-03-08", "2024-03-20")).all()  # no forecast bar in a closed hour
    assert list(stamps[:7].strftime("%a %H:%M")) == [
        "Fri 16:00", "Fri 17:00", "Fri 18:00", "Fri 19:00", "Fri 20:00", "Fri 21:00", "Sun 21:00"
    ]  # fmt: skip
    assert json.loads(res.stdout)["calendar"] == "forex (60min, UTC, stamped at the bar start)"
    chosen = "inferred from the" if not flags else "--calendar"
    assert f"forecast timestamps on the forex (60min, UTC, stamped at the bar start) calendar ({chosen}" in res.output


def _run_config(tmp_path, tiny_checkpoints, calendar: str) -> Path:
    """A run's config whose fine-tuned models are the tiny pair (its configured models exist nowhere)."""
    out = tmp_path / "outputs"
    for stage, src in zip(("tokenizer", "predictor"), tiny_checkpoints):
        shutil.copytree(src, out / "models" / "usrun" / stage / "checkpoints" / "best_model")
    cfg = tmp_path / "run.yaml"
    lines = [
        "run_name: usrun",
        f"output_dir: {out}",
        f"model: {{tokenizer: {tmp_path / 'no_tok'}, predictor: {tmp_path / 'no_model'}}}",
        f"data: {{source: csv, freq: day, csv: {{path: {tmp_path}, calendar: {calendar}}}}}",
    ]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _bundle_recording(path, tiny_pair, calendar: str) -> Path:
    """A bundle whose data conventions record the market calendar (what `kronos export` would write for a run
    whose config names one)."""
    import torch

    from kronos_cli.model.bundle import BUNDLE_FORMAT, payload

    tok, model = tiny_pair
    content = payload(BUNDLE_FORMAT, tok.config, tok.state_dict(), model.config, model.state_dict(),
                      {"max_context": 512, "clip": 5.0})  # fmt: skip
    content["normalisation"]["calendar"] = calendar
    torch.save(content, path)
    return path


@pytest.mark.parametrize(
    "how,reason",
    [
        ("inferred", "inferred from the {rows} bars given"),  # all of them, not the lookback's 12
        ("--calendar", "--calendar"),
        ("-c", "the run's data.csv.calendar"),
        ("model", "the one the model was trained on"),
        ("bundle", "the one the model was trained on"),
    ],
    ids=["inferred", "--calendar", "-c", "model", "bundle"],
)
def test_us_daily_forecasts_skip_good_friday(tmp_path, ck, markets, tiny_checkpoints, tiny_pair, how, reason):
    """Bars of a US stock ending on Wednesday 27 March 2024: the forecast skips Good Friday (29 March) on XNYS,
    inferred from the holidays all the bars keep (not just the lookback's), or named by --calendar, by the run's
    config, by the model or by the bundle. Seen in the issue: Good Friday was forecast unless --calendar XNYS."""
    source = markets["usdaily"] / "US00.csv"
    recent = _until(tmp_path, source, "2024-03-27", first="2024-03-04")  # no holiday in these bars
    cpu = ["--device", "cpu"]
    if how == "inferred":
        csv, args = _until(tmp_path / "all", source, "2024-03-27"), [*ck, "--lookback", 12]
    elif how == "--calendar":
        csv, args = recent, [*ck, "--calendar", "XNYS"]
    elif how == "-c":
        csv, args = recent, ["-c", _run_config(tmp_path, tiny_checkpoints, "XNYS"), *cpu]
    elif how == "model":
        tiny_pair[1].save_pretrained(tmp_path / "xnys", {"calendar": "XNYS"})
        csv, args = recent, ["--tokenizer", tiny_checkpoints[0], "--model", tmp_path / "xnys", *cpu]
    else:
        csv, args = recent, ["--bundle", _bundle_recording(tmp_path / "xnys.pth", tiny_pair, "XNYS"), *cpu]
    res = _run("predict", csv, *args, "--pred-len", 3, "--top-k", 1)
    assert res.exit_code == 0, res.output
    assert pd.read_csv(io.StringIO(res.stdout))["timestamps"].str[:10].tolist() == [
        "2024-03-28", "2024-04-01", "2024-04-02"
    ]  # fmt: skip
    assert f"forecast timestamps on the XNYS (day) calendar ({reason.format(rows=len(pd.read_csv(csv)))}" in res.output
    if how == "inferred":  # 18 weekdays without a holiday show no exchange: Good Friday is a weekday like any
        guessed = _run("predict", recent, *ck, "--pred-len", 3, "--top-k", 1)
        assert pd.read_csv(io.StringIO(guessed.stdout))["timestamps"].str[:10].tolist()[1] == "2024-03-29"


def test_predict_with_a_run_config_uses_its_models(tmp_path, ck, markets, tiny_checkpoints):
    """`-c CONFIG` forecasts with the run's fine-tuned models: the same forecast as naming them."""
    csv = _until(tmp_path, markets["usdaily"] / "US01.csv", "2024-03-27", first="2023-11-01")
    by_run = _run("predict", csv, "-c", _run_config(tmp_path, tiny_checkpoints, "XNYS"), "--pred-len", 4,
                  "--top-k", 1, "--lookback", 60, "--device", "cpu")  # fmt: skip
    named = _run("predict", csv, *ck, "--calendar", "XNYS", "--pred-len", 4, "--top-k", 1, "--lookback", 60)
    assert by_run.exit_code == 0 and named.exit_code == 0, by_run.output + named.output
    assert by_run.stdout == named.stdout


def test_a_model_recording_an_unknown_calendar_is_one_line(tmp_path, bars_csv, tiny_checkpoints, tiny_pair):
    tiny_pair[1].save_pretrained(tmp_path / "odd", {"calendar": "XXXX"})
    res = _run("predict", bars_csv, "--tokenizer", tiny_checkpoints[0], "--model", tmp_path / "odd", "--device", "cpu")
    assert res.exit_code == 2 and "the model records the market calendar 'XXXX'" in res.output
