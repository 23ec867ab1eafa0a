"""The README and the command line agree: every flag it names for a command is in that command's --help, every
command takes --json, and the configuration reference shows the defaults `kronos config show` prints."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
import typing
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from kronos_cli.cli.app import app
from kronos_cli.config.schema import Config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
FLAG = re.compile(r"(?<![\w-])--?[a-z][a-z0-9-]*")
runner = CliRunner()


def _commands(cmd=None, path=()) -> list[str]:
    """Every command's name as typed after `kronos` (`config show` for a subcommand)."""
    cmd = cmd or typer.main.get_command(app)
    if not hasattr(cmd, "commands"):
        return [" ".join(path)]
    return [name for sub, c in cmd.commands.items() for name in _commands(c, (*path, sub))]


COMMANDS = _commands()


@functools.cache
def _help_flags(command: str) -> frozenset[str]:
    res = runner.invoke(app, [*command.split(), "--help"])
    assert res.exit_code == 0, res.output
    return frozenset(FLAG.findall(res.output))


def _command_of(text: str) -> str | None:
    """The command a `kronos ...` line or span runs, if it names one."""
    words = text.split()
    if len(words) < 2 or words[0] != "kronos":
        return None
    two = " ".join(words[1:3])
    return two if two in COMMANDS else words[1] if words[1] in COMMANDS else None


def _table_rows() -> list[str]:
    return [line for line in README.splitlines() if line.startswith("|") and not line.startswith("|--")]


def _readme_invocations() -> list[tuple[str, str]]:
    """(command, text) of every `kronos ...` in backticks, in a table or the prose, and in the code blocks."""
    text = re.sub(r"\\\n\s*", " ", README)  # a shell line continued with a backslash
    found = [(c, span) for span in re.findall(r"`(kronos [^`]+)`", text) if (c := _command_of(span))]
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        line = line.split(" #")[0].strip().removeprefix("srun ")
        if in_code and (c := _command_of(line)):
            found.append((c, line))
    return found


def test_every_command_in_the_what_is_here_table_takes_the_flags_it_names():
    table = README.split("## What is here", 1)[1].split("\n\n", 2)[1]
    rows = [row for row in table.splitlines() if row.startswith("| `kronos ")]
    assert len(rows) >= 14
    for row in rows:
        first = re.findall(r"`([^`]*)`", row)[0]
        if first.startswith("kronos config "):  # `config show/validate/ls`: each of them exists
            assert {f"config {c}" for c in first.split()[2].split("/")} <= set(COMMANDS), row
            continue
        command = _command_of(first)
        assert command, row
        flags = {f for span in re.findall(r"`([^`]*)`", row) for f in FLAG.findall(span)}
        assert flags <= _help_flags(command), (command, flags - _help_flags(command))


def test_every_flag_the_readme_names_for_a_command_is_in_its_help():
    invocations = _readme_invocations()
    assert len(invocations) > 40
    for command, text in invocations:
        missing = set(FLAG.findall(text)) - _help_flags(command)
        assert not missing, f"README runs `{text}`, but `kronos {command} --help` has no {sorted(missing)}"


def test_flags_in_tables_without_a_command_belong_to_some_command():
    every = set().union(*(_help_flags(c) for c in COMMANDS))
    for row in _table_rows():
        spans = re.findall(r"`([^`]*)`", row)
        if any(_command_of(s) for s in spans):
            continue  # checked against its own command above
        flags = {f for s in spans for f in FLAG.findall(s) if f.startswith("--")}
        assert flags <= every, (row, flags - every)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_json(command):
    assert "--json" in _help_flags(command)


def _config_rows() -> list[list[str]]:
    section = README.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    return [
        [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        for line in section.splitlines()
        if line.startswith("| `")
    ]


def _keys(cell: str) -> list[str]:
    """`training.adam_beta1`, `adam_beta2` -> the full dotted keys (a bare name is of the first key's section)."""
    keys = [k.strip("` ") for k in cell.split(",")]
    section = keys[0].rpartition(".")[0]
    return [keys[0], *(k if "." in k or not section else f"{section}.{k}" for k in keys[1:])]


def _split_values(cell: str) -> list[str]:
    """A default cell split at the commas outside brackets and backticks."""
    parts, depth, tick, current = [], 0, False, ""
    for ch in cell:
        tick ^= ch == "`"
        depth += 0 if tick else (ch in "[({") - (ch in "])}")
        if ch == "," and depth == 0 and not tick:
            parts, current = [*parts, current.strip()], ""
        else:
            current += ch
    return [*parts, current.strip()]


def _plain(value):
    """A YAML value as the JSON of `config show` has it: dates as text, 2e-4 as a number."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _readme_defaults() -> dict[str, object]:
    """key -> the default the README shows; `...` where it describes one in words (decided at run time)."""
    out: dict[str, object] = {}
    for row in _config_rows():
        keys, cell = _keys(row[0]), row[1]
        values = _split_values(cell)
        if len(values) != len(keys):  # one phrase for several keys, e.g. "the market's (`cn`: `0.095`, `100`)"
            values = [cell] * len(keys)
        for key, text in zip(keys, values):
            if text == "–":
                out[key] = None
            elif re.fullmatch(r"`[^`]*`", text):
                out[key] = _plain(yaml.safe_load(text.strip("`")))
            else:
                out[key] = ...
    return out


def _schema_keys(cls: type = Config, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        if f.name == "config_file":
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _schema_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _path_keys(cls: type = Config, prefix: str = "") -> set[str]:
    hints = typing.get_type_hints(cls)
    keys = set()
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= _path_keys(hints[f.name], f"{prefix}{f.name}.")
        elif f.metadata.get("path"):
            keys.add(f"{prefix}{f.name}")
    return keys


def test_the_configuration_reference_shows_the_defaults_config_show_prints():
    res = runner.invoke(app, ["config", "show", "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    readme = _readme_defaults()
    assert sorted(set(_schema_keys()) - set(readme)) == [], "config keys the README's reference leaves out"
    assert sorted(set(readme) - set(_schema_keys())) == [], "README keys the config does not have"
    paths = _path_keys()
    for key, documented in readme.items():
        actual = functools.reduce(lambda d, k: d[k], key.split("."), shown)
        if documented is ...:  # described in words: a default decided at run time
            assert actual is None, f"README describes {key}'s default in words, but config show prints {actual!r}"
            continue
        if key in paths and documented is not None:
            documented = str(Path(documented).expanduser().resolve())
        assert documented == actual, f"README shows {key} default {documented!r}, config show prints {actual!r}"
