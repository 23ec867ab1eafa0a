"""Atomic writes: all or nothing, and published with the modes the umask gives new files."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

from kronos_cli.core.io import atomic_dir, atomic_path, json_floats, result_set, whole_result_set, write_text


@pytest.fixture
def umask():
    def set_(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_written_files_and_directories_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    assert _mode(write_text(tmp_path / "a.txt", "x")) == file_mode
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "sub").mkdir()
        with open(tmp / "sub" / "f.bin", "wb") as f:
            f.write(b"1")
        os.chmod(tmp / "sub" / "f.bin", 0o600)  # as a library might leave it
    assert _mode(tmp_path / "d") == dir_mode and _mode(tmp_path / "d" / "sub") == dir_mode
    assert _mode(tmp_path / "d" / "sub" / "f.bin") == file_mode


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    target = write_text(tmp_path / "keep.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_float32_values_are_written_as_their_shortest_decimals():
    values = np.array([[42.648735, 1 / 3, 0.1], [1e-8, 3.4e38, -0.0]], dtype=np.float32)
    got = json_floats(values)
    assert json.dumps(got) == "[[42.648735, 0.33333334, 0.1], [1e-08, 3.4e+38, -0.0]]"  # no float32 noise digits
    np.testing.assert_array_equal(np.array(got, dtype=np.float32), values)  # the same float32 values
    assert json_floats(np.array([1 / 3])) == [1 / 3]  # float64 keeps its own digits


KILLED_MID_SET = """
import os, signal, sys
from pathlib import Path
from kronos_cli.core.io import result_set
with result_set(Path(sys.argv[1]), {"command": "test"}) as tmp:
    (tmp / "a.txt").write_text("new a")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_result_set_killed_mid_write_keeps_the_last_set_and_the_next_write_says_so_and_cleans_up(tmp_path, caplog):
    target = tmp_path / "set"
    with result_set(target, {"command": "test"}) as tmp:
        (tmp / "a.txt").write_text("old a")
        (tmp / "b.txt").write_text("old b")
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_SET, str(target)])
    assert killed.returncode == -signal.SIGKILL
    (leftover,) = tmp_path.glob(".set.tmp-*")
    assert whole_result_set(target, "a.txt", "b.txt") and (target / "a.txt").read_text() == "old a"

    busy = tmp_path / f".set.tmp-{os.getpid()}-busy"  # a write still in progress (its process is alive)
    busy.mkdir()
    logging.getLogger("kronos_cli.core.io").addHandler(caplog.handler)  # the CLI's set-up may stop propagation
    try:
        with result_set(target, {"command": "test"}) as tmp:
            (tmp / "a.txt").write_text("new a")
    finally:
        logging.getLogger("kronos_cli.core.io").removeHandler(caplog.handler)
    assert not leftover.exists() and busy.exists()
    assert "was killed before it finished" in caplog.text and leftover.name in caplog.text
    assert whole_result_set(target, "a.txt") and not whole_result_set(target, "b.txt")  # b.txt: not in the new set
    manifest = json.loads((target / "results_manifest.json").read_text())
    assert manifest["about"] == {"command": "test"} and set(manifest["files"]) == {"a.txt"}


def test_earlier_result_sets_are_kept_newest_first_up_to_the_limit(tmp_path):
    """A second evaluate or backtest replaced the first's report; the sets it replaces are kept, whole."""
    target = tmp_path / "test"
    for i in range(4):
        with result_set(target, {"command": "test", "run": i}, keep=2) as tmp:
            (tmp / "report.txt").write_text(f"run {i}")
    kept = sorted(p for p in (tmp_path / "test.history").iterdir())
    assert [(p / "report.txt").read_text() for p in kept] == ["run 1", "run 2"]  # the newest two replaced sets
    assert all(whole_result_set(p, "report.txt") for p in kept)
    assert (target / "report.txt").read_text() == "run 3" and whole_result_set(target, "report.txt")
    with result_set(tmp_path / "plain", {"command": "test"}) as tmp:  # keep=0: nothing kept
        (tmp / "x").write_text("1")
    with result_set(tmp_path / "plain", {"command": "test"}) as tmp:
        (tmp / "x").write_text("2")
    assert not (tmp_path / "plain.history").exists()
