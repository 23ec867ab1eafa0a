"""Training checkpoints: `best_model` and `epoch_N` in the Hub layout, `last` with everything to resume exactly.

`last/` holds the model (config.json + model.safetensors) and `trainer_state.pt` (optimiser, scheduler,
scaler, RNG states, epoch, step, sampler position, best loss), read back with `weights_only=True`. Every
checkpoint is written into a temporary directory and renamed into place, so an interrupted or failed write
(no space left, say) leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_dir
from kronos_cli.model.checkpoint import load_weights, read_state_dict, save_checkpoint
from kronos_cli.train.methods import ADAPTER_WEIGHTS, adapter_state, is_lora, load_adapter

log = logging.getLogger(__name__)

STATE_NAME = "trainer_state.pt"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"]["keys"].numpy().astype(np.uint32), state["numpy"]["pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_guard(name: str):
    """Turn a failed checkpoint write (a full disk, the file-size limit, an I/O error: safetensors and torch
    report these in their own exception types) into one clear runtime error that says the previous one is
    intact."""

    class Guard:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            if isinstance(exc, Exception) and not isinstance(exc, KronosError):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                failure = RuntimeError(
                    f"writing {name} failed ({first}); the previous {name} is intact. Check free space and the "
                    f"file-size limit (ulimit -f), then train again with resume auto"
                )
                failure.settings = ("resume",)  # the CLI names its flag, as for a KronosError
                raise failure from exc
            return False

    return Guard()


def save_model_dir(model: nn.Module, directory: Path, conventions: dict | None = None) -> None:
    with _write_guard(directory.name):
        save_checkpoint(model, directory, conventions)


def save_last(
    directory: Path, model: nn.Module, trainer_state: dict[str, Any], conventions: dict | None = None
) -> None:
    """Model and trainer state together, atomically."""
    with _write_guard("checkpoints/last"), atomic_dir(directory) as tmp:
        if is_lora(model):  # the base weights are the starting model's: only the adapters change
            (tmp / "adapter").mkdir()
            save_file(adapter_state(model), str(tmp / "adapter" / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        else:
            save_checkpoint(model, tmp / "model", conventions)
        torch.save(trainer_state, tmp / STATE_NAME)
        summary = {k: v for k, v in trainer_state.items() if isinstance(v, (int, float, str, bool, type(None)))}
        (tmp / "trainer_state.json").write_text(json.dumps(summary, indent=2))


def load_last(directory: Path, model: nn.Module) -> dict[str, Any]:
    state_path = directory / STATE_NAME
    if not state_path.is_file():
        raise KronosError(
            f"{directory} is not a resumable checkpoint (no {STATE_NAME}); pass a checkpoints/last "
            f"directory or resume auto",
            setting="resume",
        )
    if (directory / "adapter").is_dir():
        load_adapter(model, directory / "adapter")
    else:
        load_weights(model, read_state_dict(directory / "model"), str(directory / "model"))
    try:
        return torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise KronosError(
            f"{state_path} could not be read ({exc}); it is corrupt, start without resume", setting="resume"
        ) from exc
