"""`kronos prep` on the synthetic market through real pyqlib: gaps, splits, leaks, atomicity, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from kronos_cli.core.errors import KronosError
from kronos_cli.data.dataset import WindowDataset
from kronos_cli.data.prep import prepare
from kronos_cli.data.store import DatasetArrays
from tests.conftest import DEMO_SPLITS


def test_manifest_counts_and_spans(prepared):
    cfg, m = prepared
    assert m["window"] == 36 and m["lookback_window"] == 30
    assert len(m["symbols"]) == 40 and m["missing_rows"] > 0
    assert m["config_hash"] and m["data_config"]["instrument"] == "csi300"
    for split in ("train", "val", "test"):
        info = m["splits"][split]
        lo, hi = (pd.Timestamp(x) for x in info["range"])
        assert info["windows"] > 0
        assert lo <= pd.Timestamp(info["first_target"]) and pd.Timestamp(info["last_target"]) <= hi + pd.Timedelta(
            days=1
        )


def test_windows_never_cross_a_gap(prepared, market):
    cfg, m = prepared
    arrays = DatasetArrays(cfg.data.dataset_path)
    calendar = pd.DatetimeIndex(pd.read_csv(market / "calendars" / "day.txt", header=None)[0])
    pos = pd.Series(np.arange(len(calendar)), index=calendar.as_unit("ns").asi8)
    for split in ("train", "val", "test"):
        for start, _ in arrays.windows[split][::37]:
            ts = arrays.timestamps[start : start + m["window"]]
            steps = np.diff(pos.loc[ts].to_numpy())
            assert (steps == 1).all(), "a window skips a calendar day (crosses a suspension)"


def test_suspended_symbol_is_split_not_stitched(prepared):
    cfg, m = prepared
    sym = next(s for s in m["symbols"] if s["name"] == "SH600000")
    assert sym["segments"] == 2


def test_val_and_test_targets_lie_inside_their_split(prepared):
    cfg, m = prepared
    arrays = DatasetArrays(cfg.data.dataset_path)
    for split in ("val", "test"):
        lo, hi = (pd.Timestamp(x).value for x in m["splits"][split]["range"])
        starts = arrays.windows[split][:, 0]
        first_target = arrays.timestamps[starts + m["lookback_window"]]
        last_target = arrays.timestamps[starts + m["window"] - 1]
        assert (first_target >= lo).all() and (last_target <= hi + 86400 * 10**9).all()
        # the lookback may reach back before the split
        assert (arrays.timestamps[starts] < lo).any()


def test_normalisation_uses_only_the_lookback(prepared, tmp_path):
    """Changing rows after a window's lookback leaves its normalised lookback unchanged."""
    cfg, m = prepared
    ds = WindowDataset(cfg.data.dataset_path, "test")
    x, _ = ds[5]
    start = int(ds.index[5, 0])
    feats = np.array(ds.arrays.features)
    feats[start + m["lookback_window"] : start + m["window"]] *= 7.0
    ds.arrays.features = feats
    y, _ = ds[5]
    np.testing.assert_array_equal(x[: m["lookback_window"]], y[: m["lookback_window"]])
    assert not np.allclose(x[m["lookback_window"] :], y[m["lookback_window"] :])
    assert np.abs(y).max() <= cfg.data.clip


def test_failed_prep_leaves_existing_dataset_untouched(prepared, monkeypatch, tmp_path, market):
    import shutil

    from kronos_cli.data import qlib_source

    cfg, m = prepared
    target = tmp_path / "ds"
    shutil.copytree(cfg.data.dataset_path, target)
    before = (target / "manifest.json").read_text()
    real = qlib_source.QlibSource.chunks

    def explode(self, symbols):
        gen = real(self, symbols)
        yield next(gen)
        raise RuntimeError("disk full")

    monkeypatch.setattr(qlib_source.QlibSource, "chunks", explode)
    cfg2 = config.load(
        None, [f"data.provider_uri={market}", f"data.dataset_path={target}", "data.chunk_size=8", *DEMO_SPLITS]
    )
    with pytest.raises(RuntimeError):
        prepare(cfg2)
    assert (target / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary directory left behind


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.instrument=csi9000", "unknown pool 'csi9000'"),
        ("data.instrument=[SH600000,XX999999]", "XX999999"),
        ("data.embargo=400", "data.embargo of 400 bars leaves no bar of the val split"),
    ],
)
def test_bad_qlib_input(market, tmp_path, override, message):
    cfg = config.load(
        None, [f"data.provider_uri={market}", f"data.dataset_path={tmp_path / 'd'}", *DEMO_SPLITS, override]
    )
    with pytest.raises(KronosError, match=message):
        prepare(cfg)


def test_no_instruments_in_range(market, tmp_path):
    cfg = config.load(
        None,
        [
            f"data.provider_uri={market}",
            f"data.dataset_path={tmp_path / 'd'}",
            "data.start_time=2010-01-01",
            "data.end_time=2012-01-01",
            "data.train_time_range=[2010-01-01,2010-12-31]",
            "data.val_time_range=[2011-01-01,2011-06-30]",
            "data.test_time_range=[2011-07-01,2011-12-31]",
        ],
    )
    with pytest.raises(KronosError, match="no instruments between"):
        prepare(cfg)


def test_missing_or_empty_provider_says_how_to_get_data(tmp_path):
    runner = CliRunner()
    for uri in (tmp_path / "nowhere", tmp_path):
        res = runner.invoke(app, ["prep", f"data.provider_uri={uri}", f"data.dataset_path={tmp_path / 'd'}"])
        assert res.exit_code == 2
        assert "qlib.run.get_data" in res.output and len(res.output.strip().splitlines()) == 1


def test_prep_cli_json_manifest(market, tmp_path):
    res = CliRunner().invoke(
        app, ["prep", f"data.provider_uri={market}", f"data.dataset_path={tmp_path / 'd'}", "--json", *DEMO_SPLITS]
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    assert manifest["splits"]["train"]["windows"] > 1000
