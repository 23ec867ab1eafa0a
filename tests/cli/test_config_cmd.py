"""`kronos config cp` and `-c NAME` of a shipped config, as torchtune's `tune cp` and `--config NAME`."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.configs import shipped

runner = CliRunner()


def test_config_cp_copies_a_shipped_config_to_edit(tmp_path):
    target = tmp_path / "mine.yaml"
    res = runner.invoke(app, ["config", "cp", "demo", str(target), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["written"] == str(target)
    assert target.read_text() == shipped("demo.yaml").read_text()
    again = runner.invoke(app, ["config", "cp", "demo", str(target)])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, ["config", "cp", "demo", str(target), "--force"]).exit_code == 0
    into_dir = runner.invoke(app, ["config", "cp", "csi300.yaml", str(tmp_path)])
    assert into_dir.exit_code == 0 and (tmp_path / "csi300.yaml").is_file()
    unknown = runner.invoke(app, ["config", "cp", "nope", str(tmp_path / "x.yaml")])
    assert unknown.exit_code == 2 and "choose from" in unknown.output and "demo" in unknown.output


def test_dash_c_takes_the_name_of_a_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["config", "show", "-c", "demo", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run_name"] == yaml.safe_load(shipped("demo.yaml").read_text())["run_name"]
    (tmp_path / "demo").write_text("run_name: local\n")  # a file of that name wins over the shipped config
    local = runner.invoke(app, ["config", "show", "-c", "demo", "--json"])
    assert local.exit_code == 0 and json.loads(local.stdout)["run_name"] == "local"
    missing = runner.invoke(app, ["config", "show", "-c", "no_such_config"])
    assert missing.exit_code == 2


def test_shell_completion_is_offered():
    res = runner.invoke(app, ["--help"])
    assert "--install-completion" in res.output and "--show-completion" in res.output
