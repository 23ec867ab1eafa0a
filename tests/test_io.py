"""Atomic writes: all or nothing, and published with the modes the umask gives new files."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from kronos_cli.io import atomic_dir, atomic_path, json_floats, write_text


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
