"""`kronos config show|validate|ls|cp`: resolved configs and their errors, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, print_json

config_app = typer.Typer(help="Show, validate, list and copy configs.", no_args_is_help=True, rich_markup_mode=None)
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
        return opt.config_path(config_file), [config, *rest]
    return opt.config_path(config_file or (Path(config) if config is not None else None)), rest


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


@config_app.command("cp")
def cp(
    name: str = typer.Argument(
        ..., help="A shipped config's name (`kronos config ls`), e.g. demo.", show_default=False
    ),
    dest: Path = typer.Argument(..., help="The file to write (a directory: NAME.yaml in it).", show_default=False),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    json_out: bool = opt.JSON,
) -> None:
    """Copy a shipped config to edit, e.g. `kronos config cp demo my_run.yaml`, then `-c my_run.yaml`."""
    from kronos_cli.configs import shipped_configs
    from kronos_cli.core.errors import KronosError
    from kronos_cli.core.io import write_text

    configs = {p.stem: p for p in shipped_configs()}
    source = configs.get(name.removesuffix(".yaml"))
    if source is None:
        raise KronosError(f"no shipped config {name!r}; choose from {', '.join(sorted(configs))}")
    target = dest / source.name if dest.is_dir() else dest
    if target.exists() and not force:
        raise KronosError(f"{target} exists; pass --force to replace it")
    write_text(target, source.read_text())
    if json_out:
        print_json({"config": source.stem, "source": str(source), "written": str(target)})
    else:
        console.print(f"wrote {target} (a copy of {source.name}); use it with -c {target}", highlight=False)
