"""Each source's client library is an optional extra that pyproject.toml declares, and the message for a missing
one names it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kronos_cli.core.errors import KronosError
from kronos_cli.fetch.extras import EXTRAS, client, install_hint

tomllib = pytest.importorskip("tomllib")  # Python 3.11 on
EXTRAS_DECLARED = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]


@pytest.mark.parametrize("source", list(EXTRAS))
def test_every_source_has_its_extra(source):
    module, extra = EXTRAS[source]
    names = [d.split(">")[0].split("[")[0] for d in EXTRAS_DECLARED[extra]]
    assert module in names and "tenacity" in names
    assert extra in EXTRAS_DECLARED["fetch"][0]


def test_a_missing_library_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "akshare", None)
    with pytest.raises(KronosError, match=r"pip install 'kronos-cli\[fetch-akshare\]'"):
        client("akshare")
    assert install_hint("akshare") == "pip install 'kronos-cli[fetch-akshare]'"


def test_an_unknown_source_is_named():
    with pytest.raises(KronosError, match="unknown source 'bloomberg'; choose one of yfinance, akshare, ccxt"):
        client("bloomberg")
