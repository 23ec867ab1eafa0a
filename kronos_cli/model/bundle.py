"""The single-file bundle: both models' configs and state dicts plus the data conventions they expect.

Plain tensors and containers only, so `torch.load(path, weights_only=True)` reads it and nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from kronos_cli import __version__
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_path
from kronos_cli.market.bars import FEATURES
from kronos_cli.market.stamps import STAMP_COLUMNS
from kronos_cli.model.checkpoint import check_shapes, expected_shapes, load_weights, tensor_shapes
from kronos_cli.model.config import (
    Conventions,
    PredictorConfig,
    TokenizerConfig,
    config_from_dict,
    conventions_from_dict,
)
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

BUNDLE_NAME = "kronos_finetuned.pth"
BUNDLE_FORMAT = "kronos-bundle"
ZIP_MAGIC, PICKLE_PROTO = b"PK\x03\x04", b"\x80"  # how torch.save's files begin: a zip archive, or the legacy pickle


def conventions(data: dict[str, Any]) -> dict[str, Any]:
    """What a bundle's user must do to the bars: the data conventions the model was trained with (max_context,
    clip, lookback_window, predict_window, and the market calendar when the run named one), and the feature and
    stamp order."""
    keys = ("max_context", "clip", "lookback_window", "predict_window", "calendar")
    out = {k: data[k] for k in keys if k in data}
    out["clip"], out["max_context"] = float(out["clip"]), int(out["max_context"])
    return {**out, "features": list(FEATURES), "stamps": list(STAMP_COLUMNS)}


def payload(
    fmt: str,
    tok_cfg: TokenizerConfig,
    tok_state: dict,
    model_cfg: PredictorConfig,
    model_state: dict,
    data: dict[str, Any],
) -> dict[str, Any]:
    """The dictionary a bundle-like file holds (the int8 export uses it with quantised state dicts)."""
    return {
        "format": fmt,
        "version": 1,
        "kronos_cli": __version__,
        "tokenizer": {"config": dataclasses.asdict(tok_cfg), "state_dict": tok_state},
        "model": {"config": dataclasses.asdict(model_cfg), "state_dict": model_state},
        "normalisation": conventions(data),
    }


def write_bundle(tok: KronosTokenizer, model: Kronos, path: Path, data: dict[str, Any]) -> Path:
    """One file with both state dicts and configs, and the data conventions (`runs.data_conventions`)."""
    content = payload(BUNDLE_FORMAT, tok.config, tok.state_dict(), model.config, model.state_dict(), data)
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return path


def read_payload(path: str | os.PathLike, fmt: str, what: str = "bundle") -> dict[str, Any]:
    """A bundle-like file's dictionary, read with weights_only=True, or a one-line error naming `what` it is."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise KronosError(f"no {what} at {path}; write one with `kronos export`")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise KronosError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if not magic.startswith((ZIP_MAGIC, PICKLE_PROTO)):  # a CSV or any other file torch.save did not write
        raise KronosError(_not_a(path, what, "it is not a file torch.save wrote"))
    try:
        with warnings.catch_warnings():  # quantised weights are stored the old way; torch says so on every load
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise KronosError(
            f"{path} holds Python objects besides tensors and plain containers; it was refused unread "
            f"(torch.load with weights_only=True never runs a pickle's code): use a {what} from `kronos export`"
        ) from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KronosError(f"{path} is not a readable kronos {what} ({first}); is it truncated?") from exc
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise KronosError(_not_a(path, what, "it holds something else"))
    return data


def _not_a(path: Path, what: str, why: str) -> str:
    return (
        f"{path} is not a kronos {what} ({why}): {'an' if what[0] in 'aeiou' else 'a'} {what} is the single .pth "
        f"file `kronos export` writes, holding "
        f"both models' configs and weights and the data conventions they were trained with"
    )


@dataclasses.dataclass(frozen=True)
class BundleParts:
    """What a bundle-like file holds, checked before anything is built from it: both configs within their bounds,
    the state dicts (names to values, not yet checked against the configs) and the data conventions."""

    tokenizer: TokenizerConfig
    tokenizer_state: dict[str, Any]
    model: PredictorConfig
    model_state: dict[str, Any]
    conventions: Conventions

    def members(self) -> tuple[tuple[type, Any, dict[str, Any]], ...]:
        """(module class, config, state dict) of the tokenizer, then of the predictor."""
        return (KronosTokenizer, self.tokenizer, self.tokenizer_state), (Kronos, self.model, self.model_state)


def bundle_parts(data: dict[str, Any], path: str | os.PathLike) -> BundleParts:
    """A bundle-like file's checked parts, or a one-line error naming the file and what is wrong."""
    tok, tok_state = _part(data, "tokenizer", TokenizerConfig, path)
    model, model_state = _part(data, "model", PredictorConfig, path)
    if (tok.s1_bits, tok.s2_bits) != (model.s1_bits, model.s2_bits):
        raise KronosError(
            f"{path}: its tokenizer's bits ({tok.s1_bits}, {tok.s2_bits}) and its predictor's ({model.s1_bits}, "
            f"{model.s2_bits}) differ: the file is damaged or was edited; export it again with `kronos export`"
        )
    conventions = conventions_from_dict(data.get("normalisation"), f"{path} (normalisation)", ("max_context", "clip"))
    return BundleParts(tok, tok_state, model, model_state, conventions)


def _part(data: dict[str, Any], name: str, cls: type, path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    part = data.get(name)
    if not isinstance(part, dict) or "config" not in part or not isinstance(part.get("state_dict"), dict):
        raise KronosError(
            f"{path}: the {name} entry lacks its config or its state_dict; the file is damaged or was edited: "
            f"export it again with `kronos export`"
        )
    if not all(isinstance(k, str) for k in part["state_dict"]):
        raise KronosError(f"{path}: the {name} state_dict has keys that are not names; export it again")
    return config_from_dict(cls, part["config"], f"{path} ({name} config)"), part["state_dict"]


def load_bundle(path: str | os.PathLike) -> tuple[KronosTokenizer, Kronos, Conventions]:
    """The tokenizer, the predictor (eval mode) and the conventions of a bundle. Its configs are checked against
    their bounds and their claimed sizes against the tensors before either model is built."""
    parts = bundle_parts(read_payload(path, BUNDLE_FORMAT), path)
    for cls, config, state in parts.members():  # both checked before either is built
        check_shapes(expected_shapes(cls, config), tensor_shapes(state), str(path))
    built = []
    for cls, config, state in parts.members():
        module = cls(config)
        load_weights(module, state, str(path))
        built.append(module.eval())
    return built[0], built[1], parts.conventions
