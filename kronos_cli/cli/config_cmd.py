"""`kronos config show|validate|ls`: resolved configs and their errors."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, print_json

config_app = typer.Typer(help="Show, validate and list configs.", no_args_is_help=True, rich_markup_mode=None)


@config_app.command("show")
def show(
    config: Path = typer.Argument(..., help="YAML config file."),
    overrides: list[str] | None = opt.OVERRIDES,
    sets: list[str] | None = opt.SETS,
    json_out: bool = opt.JSON,
) -> None:
    """Print the resolved config (defaults, file and overrides merged; paths absolute)."""
    import yaml

    from kronos_cli.config import load

    cfg = load(config, [*(overrides or []), *(sets or [])])
    if json_out:
        print_json(cfg.to_dict())
    else:
        console.file.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


@config_app.command("validate")
def validate(
    config: Path = typer.Argument(..., help="YAML config file."),
    overrides: list[str] | None = opt.OVERRIDES,
    sets: list[str] | None = opt.SETS,
) -> None:
    """Check a config and report every error at once."""
    from kronos_cli.config import load

    load(config, [*(overrides or []), *(sets or [])])
    console.print(f"{config}: OK")


@config_app.command("ls")
def ls() -> None:
    """List the shipped configs."""
    from kronos_cli.configs import shipped_configs

    for path in shipped_configs():
        console.print(str(path))
