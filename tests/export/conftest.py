"""The export tests' shared arguments: a prepared dataset and the tiny checkpoints."""

from __future__ import annotations

import pytest


@pytest.fixture
def export_args(prepared, tiny_checkpoints):
    cfg, _ = prepared
    tok, model = tiny_checkpoints
    return [
        "export",
        f"data.dataset_path={cfg.data.dataset_path}",
        "data.lookback_window=30",
        "data.predict_window=5",
        "--tokenizer",
        str(tok),
        "--model",
        str(model),
    ]
