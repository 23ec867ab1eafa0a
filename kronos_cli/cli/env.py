"""`kronos env`: versions, devices and paths for bug reports."""

from __future__ import annotations

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, print_json


def env(json_out: bool = opt.JSON) -> None:
    """Print versions, devices and paths (paste this into bug reports)."""
    from kronos_cli.runtime.environment import describe

    info = describe()
    if json_out:
        print_json(info)
        return
    from rich.table import Table

    table = Table(title="kronos env", show_header=False)
    for key, value in info.items():
        table.add_row(key, str(value))
    console.print(table)
