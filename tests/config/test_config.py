"""The YAML config system: schema, overrides, paths, secrets, all errors at once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    with pytest.raises(ConfigError, match="override data.pool=csi800: unknown key data.pool"):
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


def test_every_shipped_config_dumps_to_yaml_that_loads_back_the_same(tmp_path):
    for path in shipped_configs():
        cfg = config.load(path)
        saved = tmp_path / f"{path.stem}.yaml"
        saved.write_text(config.dump(cfg))
        assert config.load(saved).to_dict() == cfg.to_dict(), path.name


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


def test_several_problems_read_as_a_header_and_one_line_each(tmp_path):
    p = _write(tmp_path, "data:\n  instrment: x\n  clip: no\ntraining:\n  epochs: 0\n")
    with pytest.raises(ConfigError) as e:
        config.load(p)
    header, *lines = str(e.value).splitlines()
    assert header == f"{p}: 3 problems:"
    assert lines == [
        "  unknown key data.instrment; did you mean data.instrument?",
        "  data.clip must be a number, got False",
        "  training.epochs must be > 0, got 0",
    ]
    assert all(str(p) in problem for problem in e.value.problems)  # each one names its file on its own
    res = CliRunner().invoke(app, ["config", "validate", "-c", str(p)])
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [f"error: {header}", *lines]


def test_an_overrides_problem_names_the_override_not_the_file():
    from kronos_cli.configs import shipped

    with pytest.raises(ConfigError) as e:
        config.load(shipped("demo.yaml"), ["training.epochs=-3"])
    assert str(e.value) == "override training.epochs=-3: training.epochs must be > 0, got -3"
    with pytest.raises(ConfigError) as e:
        config.load(shipped("demo.yaml"), ["data.max_context=64", "data.lookback_window=600", "data.clip=-1"])
    assert e.value.problems == [
        "overrides data.max_context=64 data.lookback_window=600: data.lookback_window + data.predict_window + 1 "
        "(606) exceeds data.max_context (64)",
        "override data.clip=-1: data.clip must be > 0, got -1.0",
    ]
    res = CliRunner().invoke(app, ["train-predictor", "-c", str(shipped("demo.yaml")), "training.epochs=-3"])
    assert res.exit_code == 2
    assert res.stderr.strip() == "error: override training.epochs=-3: training.epochs must be > 0, got -3"


def test_a_key_set_without_its_lookalike_warns(tmp_path):
    runner = CliRunner()
    slip = _write(tmp_path, "backtest:\n  top_k: 10\n")
    res = runner.invoke(app, ["config", "validate", str(slip)])
    assert res.exit_code == 0
    assert "backtest.top_k is set (10) but backtest.topk is not" in res.stderr and str(slip) in res.stderr
    res = runner.invoke(app, ["config", "validate", "backtest.top_k=3"])  # no file: the override is the source
    assert "override backtest.top_k=3: backtest.top_k is set (3)" in res.stderr
    both = tmp_path / "both.yaml"  # a resolved config (the demo's): both keys set
    both.write_text("backtest:\n  top_k: 0\n  topk: 10\n")
    res = runner.invoke(app, ["config", "validate", "-c", str(both), "backtest.top_k=10"])
    assert res.exit_code == 0 and "override backtest.top_k=10: backtest.top_k is set (10)" in res.stderr
    for fine in (["backtest.topk=10"], ["backtest.top_k=10", "backtest.topk=20"]):  # the usual key; both set
        res = runner.invoke(app, ["config", "validate", *fine])
        assert res.exit_code == 0 and "WARNING" not in res.stderr, res.stderr


def test_lookalike_keys_are_found_in_any_section():
    """The rule is general: any two keys of one section whose names differ only by underscores."""
    from kronos_cli.config.checks import confusable_keys

    found = dict(confusable_keys({"inner": {"maxlen": 5}, "warmup": 2}, _Outer))
    assert set(found) == {"inner.maxlen", "warmup"}
    assert "inner.max_len to 8" in found["inner.maxlen"] and "warm_up to 0" in found["warmup"]
    assert confusable_keys({"inner": {"maxlen": 5, "max_len": 4}}, _Outer) == []


@dataclass
class _Inner:
    max_len: int = 8
    maxlen: int = 3


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    warm_up: int = 0
    warmup: int = 1


def test_config_validate_takes_c_and_json(tmp_path):
    runner = CliRunner()
    good = _write(tmp_path, "data:\n  instrument: csi800\n")
    for args in (["-c", str(good)], [str(good)], ["-c", str(good), "training.epochs=3", "--set", "seed=1"]):
        res = runner.invoke(app, ["config", "validate", *args])
        assert res.exit_code == 0 and res.stdout.strip() == f"{good}: OK", res.output
    res = runner.invoke(app, ["config", "validate", "-c", str(good), "training.epochs=0", "--json"])
    assert res.exit_code == 2
    assert json.loads(res.stdout) == {
        "config": str(good),
        "valid": False,
        "problems": ["override training.epochs=0: training.epochs must be > 0, got 0"],
    }
    res = runner.invoke(app, ["config", "show", "-c", str(good), "training.epochs=4", "--json"])
    shown = json.loads(res.stdout)
    assert shown["data"]["instrument"] == "csi800" and shown["training"]["epochs"] == 4


def test_a_yaml_alias_bomb_is_refused_quickly_and_not_echoed(tmp_path):
    """'Billion laughs': 9 levels of 9 aliases; building or printing it took 35 s and 4 GB."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    lines.append(f"run_name: [{', '.join(['*a8'] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(app, ["config", "validate", "-c", str(bomb)])
    assert res.exit_code == 2 and "expands to more than 100,000 values" in res.stderr
    assert len(res.stderr) < 500 and "lol" not in res.stderr
    res = CliRunner().invoke(app, ["config", "validate", "run_name=[" + ", ".join(["[1, 2]"] * 3) + "]"])
    assert res.exit_code == 2 and "run_name must be" in res.stderr  # a small wrong value is still quoted


def test_a_huge_value_is_quoted_in_a_few_characters(tmp_path):
    from kronos_cli.core.errors import excerpt

    assert len(excerpt("x" * 10_000_000)) <= 80 and len(excerpt([list(range(1000))] * 1000)) <= 80
    assert excerpt("1,2") == "'1,2'"


def test_a_nan_clip_is_refused():
    from kronos_cli.configs import shipped

    with pytest.raises(ConfigError, match="data.clip must be a finite number, got nan"):
        config.load(shipped("demo.yaml"), ["data.clip=.nan"])
