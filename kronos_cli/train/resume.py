"""Resuming a run from `checkpoints/last`: when to, from where, and restoring its state exactly."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import recover_dir
from kronos_cli.train import checkpoints
from kronos_cli.train.state import TrainOptions, TrainState

log = logging.getLogger(__name__)


def restore(path: Path, model, opt, sched, scaler, state: TrainState, cfg_dict: dict, out: Path, run_id: str) -> None:
    """Put back the weights, the optimiser, the schedule, the scaler, the RNG and `state` saved at `path`."""
    saved = checkpoints.load_last(path, model)
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    checkpoints.restore_rng(saved["rng"])
    for name, value in vars(TrainState.from_saved(saved)).items():
        setattr(state, name, value)
    state.run_id = run_id  # the run goes on under this invocation: its own restarts resume it
    log.info("resumed from %s at epoch %d, step %d", path, state.epoch + 1, state.step)
    old_cfg = out / "config.json"
    if old_cfg.is_file():
        diff = _config_diff(json.loads(old_cfg.read_text()), cfg_dict)
        if diff:
            log.warning("resuming with a config that differs from the run's: %s", "; ".join(diff))


def resume_path(opts: TrainOptions, out: Path) -> Path | None:
    """checkpoints/last when `resume` asks for it, or after an elastic restart when they are this run's; an
    explicit directory as given. A fresh run in a directory holding another run's checkpoints is refused
    unless `overwrite`."""
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    return _resume_path(opts, out, restarted)


def saved_run_id(last: Path) -> str:
    path = last / "trainer_state.json"
    return str(json.loads(path.read_text()).get("run_id", "")) if path.is_file() else ""


def _resume_path(opts: TrainOptions, out: Path, restarted: bool) -> Path | None:
    last = recover_dir(out / "checkpoints" / "last")
    if opts.resume == "auto":
        return last if last.is_dir() else None
    if opts.resume is not None:
        path = Path(opts.resume).expanduser()
        if not path.is_dir():
            raise KronosError(
                f"resume {opts.resume}: no checkpoint there; pass resume auto or a checkpoints/last directory",
                setting="resume",
            )
        return path
    if restarted:  # an elastic restart after a worker failure: this run's own last checkpoint, if it has one
        return last if last.is_dir() and saved_run_id(last) == opts.run_id else None
    if last.is_dir() and not opts.overwrite:
        raise KronosError(
            f"{out} holds the checkpoints of an earlier run; pass resume auto to continue it, or overwrite to "
            f"start again",
            ("resume", "overwrite"),
        )
    return None


def claim_run_dir(opts: TrainOptions, out: Path) -> None:
    """Before a fresh run starts its workers: a directory holding an earlier run's checkpoints is refused,
    unless `overwrite`, which removes its resume state so that no restart of this run can pick it up."""
    last = out / "checkpoints" / "last"
    if opts.resume is not None or not last.is_dir() or int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")):
        return
    if not opts.overwrite:
        _resume_path(opts, out, restarted=False)  # the one-line refusal
    shutil.rmtree(last)
    log.info("starting again: removed the earlier run's %s", last)


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out
