"""Atomic writes: all or nothing, and published with the modes the umask gives new files."""

from __future__ import annotations

import os
import stat

import pytest

from kronos_cli.io import atomic_dir, atomic_path, write_text


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
