"""Tiny training runs on the synthetic market."""

from __future__ import annotations

import pytest

from tests.conftest import DEMO_SPLITS


@pytest.fixture
def train_overrides(prepared, tmp_path):
    cfg, _ = prepared

    def make(**extra) -> list[str]:
        base = {
            "data.dataset_path": cfg.data.dataset_path,
            "data.provider_uri": cfg.data.provider_uri,
            "data.lookback_window": 30,
            "data.predict_window": 5,
            "output_dir": str(tmp_path / "out"),
            "run_name": "t",
            "model.tokenizer": "preset:tokenizer-tiny",
            "model.predictor": "preset:tiny",
            "training.epochs": 2,
            "training.batch_size": 16,
            "training.n_train_iter": 6,
            "training.n_val_iter": 2,
            "training.num_workers": 0,
            "training.tokenizer_learning_rate": 0.002,
            "training.predictor_learning_rate": 0.002,
            "logging.log_interval": 2,
            "seed": 5,
        }
        base.update(extra)
        return [f"{k}={v}" for k, v in base.items()] + DEMO_SPLITS

    return make
