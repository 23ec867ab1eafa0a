"""The shipped configs: `configs/` in a source checkout; copies inside the package for installed wheels."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent.parent / "configs"


def configs_dir() -> Path:
    return _CHECKOUT_DIR if _CHECKOUT_DIR.is_dir() else _PACKAGE_DIR


def shipped_configs() -> list[Path]:
    return sorted(configs_dir().glob("*.yaml"))
