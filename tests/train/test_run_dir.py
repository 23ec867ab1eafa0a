"""A run resumes only its own checkpoints: a restart picks up `checkpoints/last` only when this run wrote it, and
a fresh run in a directory holding an earlier run is refused (or, with --overwrite, starts clean)."""

from __future__ import annotations

import json

import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.train.resume import _resume_path, claim_run_dir
from kronos_cli.train.state import TrainOptions


def _last(out, run_id):
    last = out / "checkpoints" / "last"
    last.mkdir(parents=True)
    (last / "trainer_state.json").write_text(json.dumps({"run_id": run_id, "step": 7}))
    return last


def test_a_restart_resumes_its_own_checkpoint_only(tmp_path):
    mine = TrainOptions("predictor")
    last = _last(tmp_path, mine.run_id)
    assert _resume_path(mine, tmp_path, restarted=True) == last
    other = TrainOptions("predictor")
    assert other.run_id != mine.run_id
    assert _resume_path(other, tmp_path, restarted=True) is None  # an earlier run's state: start clean


def test_a_fresh_run_in_a_used_directory_is_refused_unless_overwrite(tmp_path):
    last = _last(tmp_path, "earlier")
    with pytest.raises(KronosError, match="holds the checkpoints of an earlier run; pass resume auto .* overwrite"):
        claim_run_dir(TrainOptions("tokenizer"), tmp_path)
    assert _resume_path(TrainOptions("tokenizer", resume="auto"), tmp_path, restarted=False) == last
    claim_run_dir(TrainOptions("tokenizer", overwrite=True), tmp_path)
    assert not last.exists()  # no restart of the new run can resume the old state
