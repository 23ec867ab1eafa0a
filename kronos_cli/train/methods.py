"""How much of a model a run trains (`training.method`): everything (`full`), all but the first blocks (`freeze`),
only the output head (`head`, linear probing), or low-rank adapters (`lora`, through the maintained `peft`
library) on the attention and feed-forward projections, whose base weights stay frozen.

A LoRA run checkpoints only its adapters (`checkpoints/last`), writes `best_model` with the adapters merged into
the weights in the released layout (loadable by the reference), and `best_adapter` (peft's format) for
`kronos export --adapter`.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kronos_cli.config.schema import TrainingConfig
from kronos_cli.core.errors import KronosError
from kronos_cli.core.io import atomic_dir

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"  # peft's file names
ADAPTER_CONFIG = "adapter_config.json"


def blocks_of(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks `freeze` counts: the predictor's, or the tokenizer's encoder."""
    return model.transformer if hasattr(model, "transformer") else model.encoder


def freeze_first(blocks: nn.ModuleList, n: int) -> None:
    if n < 0 or n > len(blocks):
        raise KronosError(f"training.freeze_layers must be between 0 and {len(blocks)}, got {n}")
    for block in list(blocks)[:n]:
        for p in block.parameters():
            p.requires_grad_(False)


def apply_method(model: nn.Module, t: TrainingConfig) -> nn.Module:
    """Set which weights train; for `lora`, inject the adapters (in place). Returns the model."""
    blocks = blocks_of(model)
    strict = hasattr(model, "transformer")  # the tokenizer's encoder may have fewer blocks than the setting
    if t.method == "full":
        freeze_first(blocks, t.freeze_layers if strict else min(t.freeze_layers, len(blocks)))
    elif t.method == "freeze":
        n = t.freeze_layers or (len(blocks) + 1) // 2
        freeze_first(blocks, n if strict else min(n, len(blocks)))
    elif t.method == "head":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("head."))
    elif t.method == "lora":
        _inject_lora(model, t)
    return model


def _lora_config(t: TrainingConfig):
    from peft import LoraConfig  # lazy: peft (and transformers) are needed by LoRA runs only, and slow to import

    return LoraConfig(
        r=t.lora.rank,
        lora_alpha=t.lora.alpha,
        lora_dropout=t.lora.dropout,
        target_modules=list(t.lora.targets),
        bias="none",
    )


def _inject_lora(model: nn.Module, t: TrainingConfig) -> None:
    try:
        from peft import inject_adapter_in_model  # lazy: as above
    except ImportError as exc:
        raise KronosError(
            f"training.method: lora needs peft ({exc.name} is missing); pip install 'kronos-cli[lora]'"
        ) from None
    present = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    unknown = sorted(set(t.lora.targets) - present)
    if unknown:
        raise KronosError(
            f"training.lora.targets names {', '.join(unknown)}, which the model does not have; pick from "
            f"{', '.join(sorted(present))}"
        )
    for p in model.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(_lora_config(t), model)


def is_lora(model: nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def releasable(model: nn.Module) -> nn.Module:
    """The model in the released layout: itself, or (LoRA) a copy with every adapter merged into its weights."""
    if not is_lora(model):
        return model
    from peft.tuners.lora import LoraLayer  # lazy: as above

    merged = copy.deepcopy(model)
    for name, module in list(merged.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(merged.get_submodule(parent_name) if parent_name else merged, child, module.get_base_layer())
    return merged


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights (peft's key names, without the adapter's name)."""
    from peft import get_peft_model_state_dict  # lazy: as above

    return {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()}


def save_adapter(model: nn.Module, directory: Path, t: TrainingConfig) -> None:
    """The adapters alone in peft's format (adapter_model.safetensors + adapter_config.json), atomically."""
    with atomic_dir(directory) as tmp:
        save_file(adapter_state(model), str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        config = _lora_config(t).to_dict()
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=str))


def load_adapter(model: nn.Module, directory: Path) -> None:
    """Put saved adapters back into a model the same adapters were injected into."""
    from peft import set_peft_model_state_dict  # lazy: as above

    result = set_peft_model_state_dict(model, load_file(str(directory / ADAPTER_WEIGHTS)))
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing:
        raise KronosError(f"{directory} lacks adapter weights the run needs ({missing[0]} ...); it is another run's")


def trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; for LoRA the total counts the frozen base weights too."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
