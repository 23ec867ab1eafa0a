"""Weight-only int8 and int4 copies of both models through torchao, and their files.

torchao replaces each Linear's weight by a quantised tensor subclass and keeps the module, its state-dict keys and
the weight's logical shape, so the checks of a float checkpoint apply unchanged. torch's own
`torch.ao.quantization.quantize_dynamic`, which earlier releases used, is deprecated and due for removal; an int8
file it wrote is refused with a request to export again. The files are read with `torch.load(weights_only=True)`:
importing torchao registers its tensor types as the only extra globals such a load accepts.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_path
from kronos_cli.model.bundle import bundle_parts, payload, read_payload
from kronos_cli.model.checkpoint import check_shapes, expected_shapes, tensor_shapes
from kronos_cli.model.config import Conventions
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

LOSSY = ("int8", "int4")
FILE_NAMES = {"int8": "kronos_int8.pth", "int4": "kronos_int4.pth"}
INT4_GROUP = 32  # int4 scales per group of 32 input columns (one scale per row loses too much at 4 bits)


def _torchao():
    """torchao's quantisation API, imported quietly: on a machine without CUDA it logs a warning for each GPU
    kernel library it cannot load."""
    quiet = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]  # and a deprecation notice
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchao.quantization as ao  # lazy: optional dependency (pip install 'kronos-cli[int8]')
    except ImportError:
        raise KronosError(
            "int8 and int4 exports need torchao; pip install 'kronos-cli[int8]' (or leave them out of formats)",
            setting="formats",
        ) from None
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return ao


def _config(fmt: str):
    ao = _torchao()
    if fmt == "int8":  # one scale per output row
        return ao.Int8WeightOnlyConfig(), lambda module, fqn: isinstance(module, nn.Linear)
    config = ao.IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=ao.PerGroup(INT4_GROUP))
    # a Linear whose inputs do not split into whole groups (the tokenizer's 6 features in) stays in float
    return config, lambda module, fqn: isinstance(module, nn.Linear) and module.in_features % INT4_GROUP == 0


def quantize(module: nn.Module, fmt: str) -> nn.Module:
    """A weight-only `fmt` (int8 or int4) copy of `module` in eval mode; `module` itself is unchanged."""
    config, which = _config(fmt)
    out = copy.deepcopy(module).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _torchao().quantize_(out, config, filter_fn=which)
    return out


def _format(fmt: str) -> str:
    return f"kronos-{fmt}-torchao"


def write_quantized(tok: KronosTokenizer, model: Kronos, path: Path, data: dict[str, Any], fmt: str) -> Path:
    """Both models quantised to `fmt` in one file, with the data conventions (as a bundle holds them)."""
    content = payload(
        _format(fmt), tok.config, quantize(tok, fmt).state_dict(), model.config, quantize(model, fmt).state_dict(), data
    )
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return path


def load_quantized(path: str | os.PathLike, fmt: str = "int8") -> tuple[nn.Module, nn.Module, Conventions]:
    """The quantised tokenizer and predictor of an `fmt` export, and its conventions; its configs are checked
    against their bounds and their claimed sizes against the tensors before either model is built."""
    _torchao()  # registers torchao's tensor types with torch.load(weights_only=True)
    try:
        content = read_payload(path, _format(fmt), f"{fmt} export")
    except KronosError as exc:
        if "holds something else" in str(exc) and fmt == "int8":
            raise KronosError(
                f"{path} is not an int8 export of this kronos-cli (earlier versions quantised with torch's "
                "deprecated quantize_dynamic); export it again with `kronos export --format int8`"
            ) from None
        raise
    parts = bundle_parts(content, path)
    for cls, config, state in parts.members():  # both checked before either is built
        check_shapes(expected_shapes(cls, config), tensor_shapes(state), str(path))
    built = []
    for cls, config, state in parts.members():
        module = quantize(cls(config), fmt)
        module.load_state_dict(state, assign=True)
        built.append(module.eval())
    return built[0], built[1], parts.conventions
