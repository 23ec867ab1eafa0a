"""The YAML config system: schema, overrides, paths, secrets, all errors at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kronos_cli import config
from kronos_cli.cli.app import app
from kronos_cli.config import ConfigError
from kronos_cli.configs import shipped_configs


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_are_the_reference_setup():
    cfg = config.load()
    d = cfg.data
    assert (d.instrument, d.region, d.lookback_window, d.predict_window, d.max_context) == ("csi300", "cn", 90, 10, 512)
    assert d.provider_uri == str(Path("~/.qlib/qlib_data/cn_data").expanduser())
    assert d.train_time_range == ["2011-01-01", "2022-12-31"] and d.test_time_range == ["2024-04-01", "2025-06-05"]
    assert d.features == ["open", "high", "low", "close", "volume", "amount"]


def test_unknown_key_suggests_and_names_file(tmp_path):
    p = _write(tmp_path, "data:\n  instrment: csi800\n")
    with pytest.raises(ConfigError) as e:
        config.load(p)
    assert (
        str(p) in str(e.value) and "data.instrment" in str(e.value) and "did you mean data.instrument" in str(e.value)
    )


def test_all_errors_reported_at_once(tmp_path):
    p = _write(tmp_path, "data:\n  lookback_window: ten\n  clip: -1\ntraining:\n  epochz: 3\n")
    with pytest.raises(ConfigError) as e:
        config.load(p)
    assert len(e.value.problems) == 3


def test_overrides_parse_values_and_beat_the_file(tmp_path):
    p = _write(tmp_path, "data:\n  instrument: csi300\ntraining:\n  epochs: 30\n")
    cfg = config.load(p, ["data.instrument=csi800", "training.epochs=5", "data.instrument=[SH600000,SZ000001]"])
    assert cfg.data.instrument == ["SH600000", "SZ000001"] and cfg.training.epochs == 5


def test_override_errors_name_the_command_line(tmp_path):
    with pytest.raises(ConfigError, match="command-line override: unknown key data.pool"):
        config.load(_write(tmp_path, "{}\n"), ["data.pool=csi800"])
    with pytest.raises(ConfigError, match="key=value"):
        config.load(None, ["data.instrument"])


def test_relative_paths_resolve_against_the_working_directory_and_tilde_expands(tmp_path, monkeypatch):
    sub = tmp_path / "proj"
    sub.mkdir()
    p = sub / "c.yaml"
    p.write_text("data:\n  dataset_path: ./ds\n  provider_uri: ~/qlib\n")
    monkeypatch.chdir(tmp_path)
    cfg = config.load(p, ["output_dir=out"])
    assert cfg.data.dataset_path == str(tmp_path / "ds")  # not next to the config file
    assert cfg.data.provider_uri == str(Path.home() / "qlib")
    assert cfg.output_dir == str(tmp_path / "out")


def test_a_shipped_config_writes_nothing_into_configs(tmp_path, monkeypatch):
    """Every output path of every shipped config, loaded from another folder, lies outside `configs/`."""
    from kronos_cli.configs import shipped_configs

    monkeypatch.chdir(tmp_path)
    for path in shipped_configs():
        cfg = config.load(path)
        for out in (cfg.output_dir, cfg.data.dataset_path, cfg.logging.comet.offline_directory):
            assert Path(out).is_relative_to(tmp_path), (path.name, out)


def test_invalid_yaml_names_the_line(tmp_path):
    p = _write(tmp_path, "data:\n  instrument: csi300\n    freq: day\n")
    with pytest.raises(ConfigError, match=r"line 3, column \d+: invalid YAML"):
        config.load(p)


def test_secrets_are_refused_in_yaml(tmp_path):
    p = _write(tmp_path, "logging:\n  comet:\n    enabled: true\n    api_key: abc123\n")
    with pytest.raises(ConfigError, match="COMET_API_KEY"):
        config.load(p)


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.train_time_range=[2023-01-01,2022-01-01]", "starts"),
        ("data.test_time_range=[2030-01-01,2031-01-01]", "outside"),
        ("data.lookback_window=600", "exceeds data.max_context"),
        ("data.freq=2x", "is not a bar size; use day, Nmin"),
        (
            "data.source=csv data.csv.path=x.csv data.csv.calendar=XNAS2",
            "is not a known calendar; use one of infer, 24/7",
        ),
        ("data.csv.fill_gaps=-1", "fill_gaps must be >= 0"),
    ],
)
def test_semantic_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, override.split())


def test_every_shipped_config_validates():
    paths = shipped_configs()
    assert {p.name for p in paths} >= {"demo.yaml", "csi300.yaml", "csv_minute.yaml"}
    for p in paths:
        config.load(p)


def test_config_cli_show_and_validate(tmp_path):
    runner = CliRunner()
    p = _write(tmp_path, "data:\n  instrument: csi800\n")
    res = runner.invoke(app, ["config", "show", str(p), "training.epochs=7", "--json"])
    assert res.exit_code == 0
    import json

    shown = json.loads(res.stdout)
    assert shown["data"]["instrument"] == "csi800" and shown["training"]["epochs"] == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  instrment: x\n  clip: no\n")
    res = runner.invoke(app, ["config", "validate", str(bad)])
    assert res.exit_code == 2
    assert "instrment" in res.output and "data.clip must be a number" in res.output
    assert runner.invoke(app, ["config", "validate", str(p)]).exit_code == 0


def test_packaged_configs_are_the_shipped_ones():
    from pathlib import Path

    import kronos_cli.configs as pkg

    root = Path(pkg.__file__).resolve().parent.parent.parent / "configs"
    for path in root.glob("*.yaml"):
        assert (Path(pkg.__file__).parent / path.name).read_text() == path.read_text(), path.name
