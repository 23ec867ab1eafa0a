"""A description of the installation and machine, for `kronos env` and run summaries."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys

from kronos_cli import __version__


def package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def dependencies() -> dict[str, str]:
    """Every package kronos-cli depends on, the optional extras' included, with its installed version."""
    try:
        wanted = importlib.metadata.requires("kronos-cli") or []
    except importlib.metadata.PackageNotFoundError:  # running from a checkout that is not installed
        wanted = []
    names = []
    for req in wanted:
        name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
        if name and name not in names:
            names.append(name)
    return {name: package_version(name) for name in names}


def describe() -> dict[str, object]:
    import torch  # lazy: `kronos env` should answer even when torch is broken enough to fail at import

    info: dict[str, object] = {
        "kronos-cli": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        **{name: version for name, version in dependencies().items() if name != "torch"},
        "cpu threads": torch.get_num_threads(),
        "cuda available": torch.cuda.is_available(),
        "cuda devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "mps available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "HF cache": os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")),
        "HF offline": os.environ.get("HF_HUB_OFFLINE", "0"),
        "qlib default data": os.path.expanduser("~/.qlib/qlib_data/cn_data"),
    }
    return info
