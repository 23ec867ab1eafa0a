"""Runs are kept: each write gets its own directory, links point at the newest, an earlier version's result sets
are moved in (never lost), ids resolve by prefix with one-line errors, and removing a run moves its links."""

from __future__ import annotations

import json
import os

import pytest

from kronos_cli import config
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import history_dir, result_set, whole_result_set, write_text
from kronos_cli.records.record import recorded_set
from kronos_cli.records.runs import backtest_dir, result_about
from kronos_cli.records.store import LATEST, find_run, remove_run, runs

ABOUT = {"command": "backtest", "run_name": "bt", "config_sha256": "ab" * 32}


def _record(out, text: str):
    cfg = config.load(None, [f"output_dir={out}", "run_name=bt"])
    link = backtest_dir(cfg)
    with recorded_set(cfg, "backtest", [link]) as run:
        write_text(run.staging / "report.txt", text)
    return run.path, link


def test_each_run_gets_its_own_directory_and_the_links_follow_the_newest(tmp_path):
    first, link = _record(tmp_path, "one")
    second, _ = _record(tmp_path, "two")
    cfg = config.load(None, [f"output_dir={tmp_path}", "run_name=bt"])
    assert first.name.endswith("-backtest-" + result_about(cfg, "backtest")["config_sha256"][:8]) and first != second
    assert (first / "report.txt").read_text() == "one" and whole_result_set(first, "report.txt", "config.json")
    assert link.is_symlink() and (link / "report.txt").read_text() == "two" and whole_result_set(link, "report.txt")
    assert not os.path.isabs(os.readlink(link))  # relative: the output folder can move
    assert (tmp_path / "runs" / LATEST).resolve() == second.resolve()
    assert runs(tmp_path / "runs") == [first, second]
    manifest = json.loads((second / "results_manifest.json").read_text())
    assert manifest["about"]["run_id"] == second.name and manifest["about"]["links"] == ["backtest_results/bt"]


def test_an_earlier_versions_set_and_its_history_are_moved_in_not_lost(tmp_path):
    legacy = tmp_path / "backtest_results" / "bt"
    for text in ("old", "older"):
        with result_set(legacy, ABOUT, keep=10) as tmp:
            write_text(tmp / "report.txt", text)
    root = tmp_path / "runs"
    assert set(runs(root)) == {legacy, *history_dir(legacy).iterdir()}  # listed before they are moved
    assert find_run(root, "backtest_results/bt") == legacy
    new, link = _record(tmp_path, "new")
    texts = sorted((p / "report.txt").read_text() for p in runs(root))
    assert texts == ["new", "old", "older"] and link.is_symlink() and not (legacy.parent / "bt.history").exists()


def test_ids_resolve_by_prefix_and_mistakes_are_one_line(tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(KronosError, match="no runs under"):
        find_run(root, "2026")
    first, _ = _record(tmp_path, "one")
    second, _ = _record(tmp_path, "two")
    assert find_run(root, second.name) == second and find_run(root, LATEST) == second.resolve()
    with pytest.raises(KronosError, match=r"matches 2 runs .* give more of the id") as ambiguous:
        find_run(root, first.name[:4])
    with pytest.raises(KronosError, match="no run 'nope'") as unknown:
        find_run(root, "nope")
    assert "\n" not in str(ambiguous.value) + str(unknown.value)


def test_removing_the_newest_run_points_its_links_at_the_one_before(tmp_path):
    first, link = _record(tmp_path, "one")
    second, _ = _record(tmp_path, "two")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (tmp_path / "mine").symlink_to(other)  # a link of the user's own is left alone
    changed = remove_run(tmp_path / "runs", second)
    assert not second.exists() and sorted(changed) == sorted([link, tmp_path / "runs" / LATEST])
    assert (link / "report.txt").read_text() == "one" and (tmp_path / "mine").is_symlink()
    remove_run(tmp_path / "runs", first)
    assert not link.is_symlink() and not (tmp_path / "runs" / LATEST).is_symlink()


def test_a_walkforward_result_set_of_an_earlier_version_is_listed_then_moved_in(tmp_path):
    cfg = config.load(None, [f"output_dir={tmp_path}", "run_name=wf"])
    old = tmp_path / "walkforward" / "wf" / "results"
    with result_set(old, result_about(cfg, "walkforward")) as tmp:
        write_text(tmp / "walkforward.json", "{}")
    assert runs(tmp_path / "runs") == [old]
    with recorded_set(cfg, "walkforward", [old]) as run:
        write_text(run.staging / "walkforward.json", "{}")
    (moved,) = set(runs(tmp_path / "runs")) - {run.path}  # written in the same second: either may sort first
    assert moved.parent == tmp_path / "runs" and "-walkforward-" in moved.name
    assert old.is_symlink() and old.resolve() == run.path.resolve() and whole_result_set(moved, "walkforward.json")
