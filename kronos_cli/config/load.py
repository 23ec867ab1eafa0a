"""Typed YAML configs: sections as dataclasses, one loader with dotted overrides, all errors at once.

`load(path, overrides)` reads a YAML file (or only the defaults when `path` is None), applies `key=value`
overrides, checks every key and type against the schema, resolves relative paths against the working directory
(as torchtune and LitGPT do: a shipped config never makes a run write into the folder it lives in) and returns a
`Config`. Unknown keys are errors with a
"did you mean". Secrets never come from YAML: the Comet API key is read from COMET_API_KEY only.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from kronos_cli.config.checks import semantic_checks
from kronos_cli.config.schema import SECRET_KEYS, Config
from kronos_cli.errors import KronosError


class ConfigError(KronosError):
    """One or more config problems; each names the key and the file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems) if len(problems) > 1 else problems[0])


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError([f"override {text!r} must look like key=value, e.g. data.instrument=csi800"])
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError):  # ValueError: text YAML takes for a date that is not one (2024-13-45)
        value = raw
    return key.strip().split("."), value


def _set(tree: dict, keys: list[str], value: Any) -> None:
    node = tree
    for k in keys[:-1]:
        nxt = node.get(k)
        if not isinstance(nxt, dict):
            nxt = node[k] = {}
        node = nxt
    node[keys[-1]] = value


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError([f"no config file at {path}; see `kronos config ls` for the shipped ones"])
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{path}:{where}: invalid YAML ({problem}); check the indentation and the colons"]) from exc
    except ValueError as exc:  # a value YAML reads as a date or time that cannot be one, e.g. 2024-13-45
        raise ConfigError([f"{path}: a value YAML reads as a date is not one ({exc}); fix or quote it"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    return data


def load(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The resolved config of `path` (defaults when None) with `key=value` overrides applied."""
    cfg_path = Path(path).expanduser().resolve() if path is not None else None
    tree = read_yaml(cfg_path) if cfg_path else {}
    overridden: set[str] = set()
    for text in overrides:
        keys, value = parse_override(text)
        _set(tree, keys, value)
        overridden.add(".".join(keys))
    where = str(cfg_path) if cfg_path else "defaults"
    problems: list[str] = []
    cfg = _build(Config, tree, "", where, overridden, problems)
    problems += semantic_checks(cfg, where)
    if problems:
        raise ConfigError(problems)
    cfg.config_file = str(cfg_path) if cfg_path else None
    return cfg


def _path(value: str) -> str:
    """A path as the config means it: `~` expanded, relative to the working directory, absolute."""
    return str(Path(value).expanduser().resolve())


def _build(cls: type, data: Any, prefix: str, where: str, overridden: set[str], problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{where}: {prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "config_file"}
    kwargs = {}
    file_where = where
    for key, value in data.items():
        name = f"{prefix}{key}"
        where = "command-line override" if name in overridden else file_where
        if str(key).lower() in SECRET_KEYS:
            problems.append(
                f"{where}: {name}: secrets are never read from config files; set them in the "
                f"environment (COMET_API_KEY for Comet) and remove this key"
            )
            continue
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys: {', '.join(fields)}"
            problems.append(f"{where}: unknown key {name}{hint}")
            continue
        f, tp = fields[key], hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{name}.", file_where, overridden, problems)
            continue
        ok, coerced = _check_type(value, tp)
        if not ok:
            problems.append(f"{where}: {name} must be {_describe(tp)}, got {value!r}")
            continue
        if f.metadata.get("path") and isinstance(coerced, str):
            coerced = _path(coerced)
        kwargs[key] = coerced
    for name, f in fields.items():  # defaults: nested sections built, paths resolved the same way
        if name in kwargs:
            continue
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], {}, f"{prefix}{name}.", file_where, overridden, problems)
        elif f.metadata.get("path") and f.default not in (None, dataclasses.MISSING):
            kwargs[name] = _path(f.default)
    return cls(**kwargs)


def _check_type(value: Any, tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, v = _check_type(value, arg)
            if ok:
                return True, v
        return False, None
    if tp is type(None):
        return value is None, None
    if origin is Literal:
        return value in args, value
    if origin is list:
        if not isinstance(value, list):
            return False, None
        out = []
        for item in value:
            ok, v = _check_type(item, args[0])
            if not ok:
                return False, None
            out.append(v)
        return True, out
    if origin is dict:
        if not isinstance(value, dict):
            return False, None
        return all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()), dict(value)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, None
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return True, str(value)  # YAML reads 2024-01-01 as a date; dates come back as str() below
        if hasattr(value, "isoformat"):
            return True, value.isoformat()
        return False, None
    return isinstance(value, tp), value


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0])}"
    if origin is dict:
        return "a mapping of strings"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))
