"""The shipped configs. `configs/` at the top of a checkout is canonical; the package carries identical copies
(a test keeps them in step) so that an installed wheel has them too."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent.parent / "configs"


def configs_dir() -> Path:
    return _CHECKOUT_DIR if (_CHECKOUT_DIR / "demo.yaml").is_file() else _PACKAGE_DIR


def shipped_configs() -> list[Path]:
    return sorted(configs_dir().glob("*.yaml"))


def shipped(name: str) -> Path:
    return configs_dir() / name
