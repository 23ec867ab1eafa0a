"""Which torch device to forecast or train on."""

from __future__ import annotations

import torch

from kronos_cli.core.errors import KronosError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(device: str | torch.device | None) -> torch.device:
    """auto/None picks cuda:0, then mps, then cpu; an unavailable device is a user error."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise KronosError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps", setting="device") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise KronosError(
                f"device {name} was asked for but CUDA is not available here; use device cpu "
                f"(or install a CUDA build of torch)",
                setting="device",
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise KronosError(f"device {name} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "mps" and not _mps_available():
        raise KronosError(
            f"device {name} was asked for but MPS is not available here; use device cpu", setting="device"
        )
    return dev
