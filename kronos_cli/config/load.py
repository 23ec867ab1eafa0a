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
import logging
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from kronos_cli.config.checks import confusable_keys, semantic_checks
from kronos_cli.config.schema import SECRET_KEYS, Config
from kronos_cli.core.errors import KronosError, excerpt

log = logging.getLogger(__name__)


class ConfigError(KronosError):
    """One or more config problems, each naming its key and where it was set (the file or the override). More
    than one read as a header line naming the file and one indented line per problem."""

    def __init__(self, problems: list[str], where: str | None = None):
        self.problems = [" ".join(p.split()) for p in problems]
        self.multiline = len(self.problems) > 1
        if not self.multiline:
            super().__init__(self.problems[0])
            return
        prefix = f"{where}: " if where else ""
        header = f"{where}: {len(self.problems)} problems:" if where else f"{len(self.problems)} config problems:"
        super().__init__("\n".join([header, *(f"  {p.removeprefix(prefix)}" for p in self.problems)]))


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError([f"override {text!r} must look like key=value, e.g. data.instrument=csi800"])
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError):  # ValueError: text YAML takes for a date that is not one (2024-13-45)
        value = raw
    _check_size(value, f"override {key.strip()}")
    return key.strip().split("."), value


MAX_VALUES = 100_000  # values in a config once YAML aliases are expanded; real configs hold a few hundred


def _check_size(data: Any, where: str) -> None:
    """Refuse YAML whose aliases expand to more than MAX_VALUES values ("billion laughs": a few hundred bytes that
    expand to gigabytes once anything walks or prints them). Counting stops at the bound, so this is cheap."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(
                [f"{where}: expands to more than {MAX_VALUES:,} values (nested YAML aliases?); write the values out"]
            )
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


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
    _check_size(data, str(path))
    return data


def load(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The resolved config of `path` (defaults when None) with `key=value` overrides applied."""
    cfg_path = Path(path).expanduser().resolve() if path is not None else None
    tree = read_yaml(cfg_path) if cfg_path else {}
    overridden: dict[str, str] = {}  # dotted key -> the override that set it last
    for text in overrides:
        keys, value = parse_override(text)
        _set(tree, keys, value)
        overridden.pop(".".join(keys), None)
        overridden[".".join(keys)] = text.strip()
    where = str(cfg_path) if cfg_path else "defaults"
    problems: list[str] = []
    cfg = _build(Config, tree, "", where, overridden, problems)
    problems += [f"{_source(_KEY.findall(p), overridden, where)}: {p}" for p in semantic_checks(cfg)]
    if problems:
        raise ConfigError(problems, str(cfg_path) if cfg_path else None)
    for key, message in confusable_keys(tree, overridden=frozenset(overridden)):
        log.warning("%s: %s", _source([key], overridden, where), message)
    cfg.config_file = str(cfg_path) if cfg_path else None
    return cfg


# A dotted config key named in a check's message: every check names the keys it is about.
_KEY = re.compile(r"\b[a-z_]+(?:\.[a-z0-9_]+)+\b")


def _source(keys: list[str], overridden: dict[str, str], file_where: str) -> str:
    """Where a problem with `keys` comes from: the overrides that set one of them (or their section), else the
    file."""
    texts = [t for k, t in overridden.items() if any(key == k or key.startswith(f"{k}.") for key in keys)]
    if not texts:
        return file_where
    return f"override {texts[0]}" if len(texts) == 1 else f"overrides {' '.join(texts)}"


def dump(cfg: Config) -> str:
    """The resolved config as YAML that `load` reads back into the same config (its paths absolute)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def _path(value: str) -> str:
    """A path as the config means it: `~` expanded, relative to the working directory, absolute."""
    return str(Path(value).expanduser().resolve())


def _build(cls: type, data: Any, prefix: str, where: str, overridden: dict[str, str], problems: list[str]) -> Any:
    if not isinstance(data, dict):
        section = prefix.rstrip(".")
        source = _source([section], overridden, where) if section else where
        problems.append(f"{source}: {section or 'config'} must be a mapping, got {type(data).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "config_file"}
    kwargs = {}
    file_where = where
    for key, value in data.items():
        name = f"{prefix}{key}"
        where = _source([name], overridden, file_where)
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
            problems.append(f"{where}: {name} must be {_describe(tp)}, got {excerpt(value)}")
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


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


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
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):  # YAML 1.1 reads 1e6 as text, not 1.0e+6
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
