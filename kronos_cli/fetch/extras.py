"""Each source's client library is an optional extra: importing it, or saying which `pip install` brings it."""

from __future__ import annotations

import importlib
from types import ModuleType

from kronos_cli.core.errors import KronosError

# source -> (the module imported, the extra that installs it)
EXTRAS = {
    "yfinance": ("yfinance", "fetch-yfinance"),
    "akshare": ("akshare", "fetch-akshare"),
    "ccxt": ("ccxt", "fetch-ccxt"),
}


def install_hint(source: str) -> str:
    return f"pip install 'kronos-cli[{EXTRAS[source][1]}]'"


def client(source: str) -> ModuleType:
    """The client library of `source`, or a KronosError saying which extra installs it."""
    if source not in EXTRAS:
        raise KronosError(f"unknown source {source!r}; choose one of {', '.join(EXTRAS)}")
    module = EXTRAS[source][0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise KronosError(
            f"the {source} source needs the {module} package, which is not installed ({exc}); {install_hint(source)}"
        ) from None
