"""`kronos config show|validate|ls`: resolved configs and their errors."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, print_json

config_app = typer.Typer(help="Show, validate and list configs.", no_args_is_help=True, rich_markup_mode=None)
CONFIG_ARGUMENT = typer.Argument(
    None,
    help="YAML config file, or -c FILE as every command takes it [default: built-in defaults].",
    show_default=False,
)


def _file_and_overrides(
    config: str | None, config_file: Path | None, overrides: list[str] | None, sets: list[str] | None
) -> tuple[Path | None, list[str]]:
    """The config file, given as `-c FILE` or as the first argument (then every argument after it is an override),
    and the overrides; a first argument that is key=value and no file is an override of the built-in defaults."""
    rest = [*(overrides or []), *(sets or [])]
    if config is not None and (config_file is not None or ("=" in config and not Path(config).exists())):
        return config_file, [config, *rest]
    return (config_file or (Path(config) if config is not None else None)), rest


@config_app.command("show")
def show(
    config: str | None = CONFIG_ARGUMENT,
    config_file: Path | None = opt.CONFIG,
    overrides: list[str] | None = opt.OVERRIDES,
    sets: list[str] | None = opt.SETS,
    json_out: bool = opt.JSON,
) -> None:
    """Print the resolved config (defaults, file and overrides merged; paths absolute)."""
    from kronos_cli.config import dump, load

    cfg = load(*_file_and_overrides(config, config_file, overrides, sets))
    if json_out:
        print_json(cfg.to_dict())
    else:
        console.file.write(dump(cfg))


@config_app.command("validate")
def validate(
    config: str | None = CONFIG_ARGUMENT,
    config_file: Path | None = opt.CONFIG,
    overrides: list[str] | None = opt.OVERRIDES,
    sets: list[str] | None = opt.SETS,
    json_out: bool = opt.JSON,
) -> None:
    """Check a config and report every error at once (with --json, also as a list on stdout)."""
    from kronos_cli.config import ConfigError, load

    path, rest = _file_and_overrides(config, config_file, overrides, sets)
    name = str(path) if path is not None else "built-in defaults"
    try:
        load(path, rest)
    except ConfigError as exc:
        if json_out:
            print_json({"config": name, "valid": False, "problems": exc.problems})
        raise
    if json_out:
        print_json({"config": name, "valid": True, "problems": []})
    else:
        console.print(f"{name}: OK")


@config_app.command("ls")
def ls(json_out: bool = opt.JSON) -> None:
    """List the shipped configs."""
    from kronos_cli.configs import shipped_configs

    paths = [str(path) for path in shipped_configs()]
    if json_out:
        print_json({"configs": paths})
        return
    for path in paths:
        console.print(path, markup=False, highlight=False)
