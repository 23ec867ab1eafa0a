"""Importing a CSV source again: unchanged files are a no-op that writes nothing; files that grew are read from
their first new byte and give exactly the provider and dataset a whole import of them gives; a file changed
anywhere else is imported whole; a row appended out of order is refused with its line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos_cli import config
from kronos_cli.core.errors import KronosError
from kronos_cli.data.prep import prepare
from kronos_cli.data.synthetic_csv import write_csv_market
from tests.data.test_csv_markets import CN5 as CSV_CN5
from tests.data.test_prep_csv import SPLITS, minute_bars

CN5 = [*(o for o in CSV_CN5 if o != "data.source=csv"), "data.csv.calendar=XSHG", "data.csv.fill_gaps=3"]


def _cfg(path: Path, ds: Path, market: list[str]):
    return config.load(None, ["data.source=csv", f"data.csv.path={path}", f"data.dataset_path={ds}", *market])


def _lines(frame: pd.DataFrame) -> tuple[str, list[str]]:
    header, *rows = frame.to_csv(index=False).splitlines(keepends=True)
    return header, rows


def _split(frame: pd.DataFrame, cut: str) -> tuple[str, list[str], list[str]]:
    """A file's header, its rows before `cut` and the rows from `cut` on, as `to_csv` writes them."""
    header, rows = _lines(frame)
    before = int((pd.to_datetime(frame["timestamps"]) < pd.Timestamp(cut)).sum())
    return header, rows[:before], rows[before:]


@pytest.fixture(scope="module")
def cn5(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("cn5")
    write_csv_market(root / "m", "cn5min", symbols=4)
    return pd.read_csv(root / "m" / "cn5min.csv")


def _markets(cn5: pd.DataFrame) -> dict[str, tuple[list[str], dict[str, pd.DataFrame], str]]:
    """Three sources: XSHG 5-minute bars in a file per symbol (with gaps, a late listing and a delisting; the
    gaps at the seam filled), an inferred calendar in one file with a symbol column, and one in a directory."""
    files = {f"{s.lower()}.csv": g.drop(columns="symbol") for s, g in cn5.groupby("symbol")}
    first = files["sh600000.csv"]
    seam = int((pd.to_datetime(first["timestamps"]) < pd.Timestamp("2024-04-26")).sum())
    files["sh600000.csv"] = first.drop(index=first.index[seam : seam + 2])  # two bars missing at the seam
    both = pd.concat([minute_bars("AAA", 1), minute_bars("BBB", 2)])
    dirs = {"aaa.csv": minute_bars("AAA", 1).drop(columns="symbol"), "bbb.csv": minute_bars("BBB", 2)}
    return {
        "xshg-dir": (CN5, files, "2024-04-26"),
        "infer-file": (SPLITS, {"bars.csv": both}, "2024-01-29 11:00"),
        "infer-dir": (SPLITS, dirs, "2024-01-29"),
    }


def _write_first_part(src: Path, files: dict[str, pd.DataFrame], cut: str) -> dict[str, list[str]]:
    """The files up to `cut` (a single file's symbols each cut there); returns the rows to append to each."""
    src.mkdir()
    later = {}
    for name, frame in files.items():
        if "symbol" in frame and frame["symbol"].nunique() > 1:  # one file, symbol by symbol: append at the end
            parts = [_split(g, cut) for _, g in frame.groupby("symbol", sort=False)]
            header, first, rest = parts[0][0], [r for p in parts for r in p[1]], [r for p in parts for r in p[2]]
        else:
            header, first, rest = _split(frame, cut)
        (src / name).write_text(header + "".join(first))
        later[name] = rest
    return later


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _stats(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in [root, *root.rglob("*")]}


def _same_dataset(got: dict, want: dict, a: Path, b: Path) -> None:
    skip = {"created", "elapsed_s", "arrays", "digest", "data_config", "config_hash"}
    g, w = ({k: v for k, v in m.items() if k not in skip} for m in (got, want))
    for m in (g, w):
        m["calendar"] = {**m["calendar"], "imported": {**m["calendar"]["imported"], "bars_read": 0, "files_read": 0}}
    assert g == w
    assert {k: v["sha256"] for k, v in got["arrays"].items()} == {k: v["sha256"] for k, v in want["arrays"].items()}
    ta, tb = _tree(a / "qlib"), _tree(b / "qlib")
    ta.pop("kronos_import.json"), tb.pop("kronos_import.json")
    assert ta == tb  # calendar, pool, meta, every field bin and the bar times seen: byte for byte


@pytest.mark.parametrize("market", ["xshg-dir", "infer-file", "infer-dir"])
def test_appended_rows_are_read_alone_and_give_what_a_whole_import_gives(tmp_path, cn5, market):
    settings, files, cut = _markets(cn5)[market]
    src = tmp_path / "src"
    later = _write_first_part(src, files, cut)
    path = src if len(files) > 1 else src / "bars.csv"
    before = prepare(_cfg(path, tmp_path / "ds", settings))
    old_bins = {k: v for k, v in _tree(tmp_path / "ds" / "qlib").items() if k.endswith(".bin")}
    for name, rows in later.items():
        with open(src / name, "a") as f:
            f.write("".join(rows))
    got = prepare(_cfg(path, tmp_path / "ds", settings))
    imported = got["calendar"]["imported"]
    assert imported["bars_read"] == sum(len(r) for r in later.values()) < before["calendar"]["imported"]["bars_read"]
    assert imported["files_read"] == sum(1 for rows in later.values() if rows)  # a delisted symbol: not read
    new_bins = _tree(tmp_path / "ds" / "qlib")
    assert all(new_bins[k].startswith(v) for k, v in old_bins.items())  # the bars imported before stay as they were
    want = prepare(_cfg(path, tmp_path / "whole", settings))
    assert want["calendar"]["imported"]["bars_read"] > imported["bars_read"]
    _same_dataset(got, want, tmp_path / "ds", tmp_path / "whole")


def test_an_unchanged_source_is_a_no_op_that_writes_nothing(tmp_path, cn5):
    settings, files, _ = _markets(cn5)["xshg-dir"]
    (tmp_path / "src").mkdir()
    for name, frame in files.items():
        frame.to_csv(tmp_path / "src" / name, index=False)
    cfg = _cfg(tmp_path / "src", tmp_path / "ds", settings)
    first = prepare(cfg)
    stats = _stats(tmp_path / "ds")
    again = prepare(cfg)
    assert again == first
    assert _stats(tmp_path / "ds") == stats
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]  # no staging directory either
    os.utime(tmp_path / "src" / "sh600001.csv")  # touched, the same bytes: still nothing to do
    assert prepare(cfg) == first
    shorter = _cfg(tmp_path / "src", tmp_path / "ds", [*settings, "data.lookback_window=48"])
    assert prepare(shorter)["calendar"]["imported"]["bars_read"] == 0  # new windows, the same bars


def test_a_file_changed_before_its_end_is_imported_whole(tmp_path, cn5):
    settings, files, cut = _markets(cn5)["infer-dir"]
    src = tmp_path / "src"
    later = _write_first_part(src, files, cut)
    prepare(_cfg(src, tmp_path / "ds", settings))
    text = (src / "aaa.csv").read_text().splitlines(keepends=True)
    text[5] = text[5].replace(",", ",1", 2).replace(",1", ",", 1)  # a price changed in the middle
    (src / "aaa.csv").write_text("".join(text) + "".join(later["aaa.csv"]))
    got = prepare(_cfg(src, tmp_path / "ds", settings))
    want = prepare(_cfg(src, tmp_path / "whole", settings))
    assert got["calendar"]["imported"]["bars_read"] == want["calendar"]["imported"]["bars_read"]
    _same_dataset(got, want, tmp_path / "ds", tmp_path / "whole")


def test_a_row_appended_out_of_order_names_its_line(tmp_path, cn5):
    settings, files, cut = _markets(cn5)["infer-dir"]
    src = tmp_path / "src"
    later = _write_first_part(src, files, cut)
    prepare(_cfg(src, tmp_path / "ds", settings))
    old_rows = len((src / "aaa.csv").read_text().splitlines()) - 1
    with open(src / "aaa.csv", "a") as f:
        f.write(later["aaa.csv"][0].replace("2024-01-29", "2024-01-02", 1))
    with pytest.raises(KronosError, match=rf"aaa.csv line {old_rows + 2}: timestamp 2024-01-02 .* comes before the "
                                          rf"one on line {old_rows + 1}; sort the file by time"):  # fmt: skip
        prepare(_cfg(src, tmp_path / "ds", settings))
    assert (tmp_path / "ds" / "manifest.json").is_file()  # the dataset before it stands
    assert np.load(tmp_path / "ds" / "features.npy").shape[0] > 0
