"""Checkpoint I/O in the released layout: a directory with `config.json` and `model.safetensors`."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch
from huggingface_hub import snapshot_download
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_dir
from kronos_cli.model.config import Conventions, config_from_dict, conventions_from_dict, preset

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"
HUB_FILES = [CONFIG_NAME, WEIGHTS_NAME, "*.md"]  # what a checkpoint on the Hub is downloaded with
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A local directory holding the checkpoint: `name_or_path` itself, or a Hub snapshot of it."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise KronosError(
            f"{name} is a file; pass the checkpoint directory that holds {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    if name.startswith("preset:"):  # a valid model spec for training, but one without weights
        raise KronosError(
            f"{name} names an untrained architecture, not a checkpoint, so there are no weights to load; pass a "
            f"trained checkpoint directory, or a Hugging Face Hub id such as NeoQuasar/Kronos-small"
        )
    if name.startswith((".", "~")) or not _HUB_ID.match(name):
        raise KronosError(
            f"no checkpoint directory at {name} (taken for a local path); check the path, or pass a "
            f"Hugging Face Hub id such as NeoQuasar/Kronos-small"
        )
    return _download(name)


def _download(repo_id: str) -> Path:
    try:
        local = snapshot_download(repo_id, allow_patterns=HUB_FILES)
    except Exception as exc:  # offline, unknown repo, gated repo, no space...
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        reason = type(exc).__name__
        raise KronosError(
            f"{repo_id} is not a local directory, so it was taken for a Hugging Face Hub id, but it could not be "
            f"fetched ({reason}{', HF_HUB_OFFLINE is set' if offline else ''}); check the id, connect to the "
            f"internet once to cache it, or pass a local directory with {CONFIG_NAME} and {WEIGHTS_NAME}"
        ) from exc
    return Path(local)


CONVENTIONS_KEY = "kronos_cli"  # our block in config.json: the reference's loader ignores keys it does not know


def _read_json(directory: Path) -> dict:
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file():
        raise KronosError(f"{directory} has no {CONFIG_NAME}; is it a Kronos checkpoint directory?")
    try:
        fields = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KronosError(f"{cfg_path} is not valid JSON ({exc}); re-download or re-export the checkpoint") from exc
    if not isinstance(fields, dict):
        raise KronosError(f"{cfg_path} must hold a JSON object of config fields")
    return fields


def read_config(directory: Path, config_class: type):
    fields = _read_json(directory)
    cfg_path = directory / CONFIG_NAME
    extra = sorted(set(fields) - {f.name for f in dataclasses.fields(config_class)} - {CONVENTIONS_KEY})
    if extra:
        log.debug("ignoring unknown config fields in %s: %s", cfg_path, ", ".join(extra))
    return config_from_dict(config_class, fields, str(cfg_path))


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    weights = directory / WEIGHTS_NAME
    if weights.is_file():
        try:
            return load_file(str(weights))
        except Exception as exc:
            raise KronosError(_unreadable(weights, exc)) from exc
    return _load_legacy(directory, "cpu")


def weight_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor in a checkpoint's weights, read without loading them: the safetensors header, or
    the legacy file's tensors mapped to the meta device."""
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        return {k: tuple(v.shape) for k, v in _load_legacy(directory, "meta").items()}
    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:
        raise KronosError(_unreadable(weights, exc)) from exc


def _unreadable(weights: Path, exc: Exception) -> str:
    return (
        f"{weights} is not a readable safetensors file ({exc}); the download or copy is "
        f"probably truncated: delete it and fetch the checkpoint again"
    )


def _load_legacy(directory: Path, device: str) -> dict[str, torch.Tensor]:
    legacy = directory / LEGACY_WEIGHTS_NAME
    if not legacy.is_file():
        raise KronosError(f"{directory} has no {WEIGHTS_NAME}; is it a Kronos checkpoint directory?")
    try:
        state = torch.load(legacy, map_location=device, weights_only=True)
    except Exception as exc:
        raise KronosError(f"{legacy} could not be loaded as plain tensors ({exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise KronosError(f"{legacy} does not hold a state_dict of tensors; fetch the checkpoint again")
    return state


def expected_shapes(model_class: type, config) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of a `model_class` built from `config`, from a copy on the meta device: nothing is
    allocated, so a config's claimed sizes are compared with its weights before the model is built."""
    with torch.device("meta"):
        model = model_class(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...] | None], source: str) -> None:
    """The weights in `source` have exactly the keys and shapes the config implies, or an error naming them (a
    shape of None stands for something that is not a tensor)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        raise KronosError(
            f"weights in {source} do not fit its config.json ({'; '.join(parts)}); "
            f"the checkpoint is corrupt or its config was edited"
        )


def tensor_shapes(state: dict) -> dict[str, tuple[int, ...] | None]:
    """Each entry's shape, None for one that is not a tensor."""
    return {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()}


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with an error that names the mismatching keys."""
    check_shapes(tensor_shapes(model.state_dict()), tensor_shapes(state), source)
    model.load_state_dict(state, strict=True)


def read_conventions(directory: Path) -> Conventions:
    """What a checkpoint we wrote records about the data it was trained on (max_context, lookback_window,
    predict_window, clip, calendar), each within its bounds; nothing recorded for a released checkpoint."""
    block = _read_json(directory).get(CONVENTIONS_KEY, {})
    return conventions_from_dict(block, f"{directory / CONFIG_NAME} ({CONVENTIONS_KEY} block)")


def save_checkpoint(model: torch.nn.Module, directory: str | os.PathLike, conventions: dict | None = None) -> Path:
    """Write config.json and model.safetensors atomically (a temporary sibling directory, then a rename).

    `conventions` (the data the model was trained with) go into config.json under `kronos_cli`, which the
    reference implementation's loader ignores.
    """
    target = Path(directory).expanduser()
    fields = dataclasses.asdict(model.config)
    if conventions:
        fields[CONVENTIONS_KEY] = dict(conventions)
    with atomic_dir(target) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(fields, indent=2, sort_keys=True))
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        if (target / "README.md").is_file():  # keep a model card written beside the weights
            shutil.copy2(target / "README.md", tmp / "README.md")
    return target


class PretrainedMixin:
    """`from_pretrained` / `save_pretrained` for a module built from one `config_class` instance."""

    config_class: type

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None):
        """Load a released or saved checkpoint: a local directory or a Hugging Face Hub id."""
        directory = resolve_checkpoint(name_or_path)
        config = read_config(directory, cls.config_class)
        with torch.device("meta"):  # no random initialisation of weights about to be replaced (0.5 s for -small)
            model = cls(config)
        expected = tensor_shapes(model.state_dict())
        check_shapes(expected, weight_shapes(directory), str(directory))
        state = read_state_dict(directory)
        check_shapes(expected, tensor_shapes(state), str(directory))
        dtypes = {k: v.dtype for k, v in model.state_dict().items()}
        # assign: the module takes the read tensors as they are (in its own dtype), no second copy
        model.load_state_dict({k: v.to(dtypes[k]) for k, v in state.items()}, strict=True, assign=True)
        model.eval()
        return model.to(device) if device is not None else model

    @classmethod
    def from_preset(cls, name: str):
        """A randomly initialised model of a named architecture."""
        cfg = preset(name).config
        if not isinstance(cfg, cls.config_class):
            raise KronosError(f"preset {name!r} is not a {cls.__name__} preset")
        return cls(cfg)

    def save_pretrained(self, directory: str | os.PathLike, conventions: dict | None = None) -> Path:
        return save_checkpoint(self, directory, conventions)
