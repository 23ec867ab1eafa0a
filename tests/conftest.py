"""Shared fixtures: tiny models saved in the released layout and small bar files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_cli.model import Kronos, KronosTokenizer


@pytest.fixture(scope="session")
def tiny_pair():
    torch.manual_seed(0)
    return KronosTokenizer.from_preset("tokenizer-tiny").eval(), Kronos.from_preset("tiny").eval()


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, tiny_pair):
    root = tmp_path_factory.mktemp("ckpt")
    tok, model = tiny_pair
    tok.save_pretrained(root / "tokenizer")
    model.save_pretrained(root / "model")
    return root / "tokenizer", root / "model"


def make_bars(n: int = 160, freq: str = "B", seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq=freq)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * (1 + rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * 1.005
    low = np.minimum(open_, close) * 0.995
    vol = rng.uniform(1e5, 2e5, n)
    return pd.DataFrame(
        {
            "timestamps": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": vol,
            "amount": vol * close,
        }
    )


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture
def bars_csv(tmp_path, bars):
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False)
    return path


DEMO_SPLITS = [
    "data.start_time=2021-01-01",
    "data.end_time=2024-12-31",
    "data.train_time_range=[2021-01-01,2023-06-30]",
    "data.val_time_range=[2023-07-01,2024-03-31]",
    "data.test_time_range=[2024-04-01,2024-12-31]",
]


def backtest_args(cfg, tok, model, output_dir, dataset=None) -> list[str]:
    """`kronos backtest` of the prepared synthetic market by the tiny pair (2 paths, a short test range); callers
    append their batch size and flags."""
    return [
        "backtest",
        f"data.dataset_path={dataset or cfg.data.dataset_path}",
        f"data.provider_uri={cfg.data.provider_uri}",
        "data.lookback_window=30",
        "data.predict_window=5",
        *DEMO_SPLITS,
        f"output_dir={output_dir}",
        "run_name=bt",
        "backtest.start_time=2024-06-01",
        "backtest.end_time=2024-12-31",
        "backtest.topk=8",
        "backtest.n_drop=2",
        "backtest.sample_count=2",
        "--tokenizer",
        str(tok),
        "--model",
        str(model),
        "--device",
        "cpu",
    ]


@pytest.fixture(scope="session")
def market(tmp_path_factory):
    """The default synthetic market, written once per test session and read through real pyqlib."""
    from kronos_cli.data.synthetic import write_market

    return write_market(tmp_path_factory.mktemp("qlib") / "market")


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, market):
    """A dataset prepared from the synthetic market (lookback 30, predict 5)."""
    from kronos_cli import config
    from kronos_cli.data.prep import prepare

    out = tmp_path_factory.mktemp("ds") / "dataset"
    cfg = config.load(
        None,
        [
            f"data.provider_uri={market}",
            f"data.dataset_path={out}",
            "data.lookback_window=30",
            "data.predict_window=5",
            "data.chunk_size=16",
            *DEMO_SPLITS,
        ],
    )
    return cfg, prepare(cfg)


@pytest.fixture
def dataset_copy(prepared, tmp_path) -> Path:
    """A copy of the prepared dataset, to damage."""
    cfg, _ = prepared
    return Path(shutil.copytree(cfg.data.dataset_path, tmp_path / "dataset"))


def edit_array(dataset: Path, name: str, edit) -> None:
    """Replace a dataset array by `edit(array)`."""
    arr = edit(np.load(dataset / f"{name}.npy"))
    np.save(dataset / f"{name}.npy", arr, allow_pickle=arr.dtype == object)


def rehash_dataset(dataset: Path) -> None:
    """Record every array's dtype, shape, size and SHA-256 again and seal the manifest: an edit made on purpose."""
    from kronos_cli.data.manifest import write_manifest

    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest.pop("digest", None)
    write_manifest(dataset, manifest)


def edit_manifest(dataset: Path, edit, reseal: bool) -> None:
    """Edit a dataset's manifest, with its digest recomputed (`reseal`: a deliberate edit) or left as it was."""
    from kronos_cli.data.manifest import manifest_digest

    manifest = json.loads((dataset / "manifest.json").read_text())
    edit(manifest)
    if reseal:
        manifest["digest"] = manifest_digest(manifest)
    (dataset / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def built_on(monkeypatch) -> list[str]:
    """The device type of every tokenizer and predictor built while a test runs: "meta" ones cost no memory."""
    devices: list[str] = []
    for cls in (Kronos, KronosTokenizer):

        def spy(self, config, _init=cls.__init__):
            devices.append(torch.empty(0).device.type)
            _init(self, config)

        monkeypatch.setattr(cls, "__init__", spy)
    return devices
