"""Command-line options shared by several commands, each defined once.

Groups of options that travel together (torchrun's launcher flags, forecast sampling) are added to a command by
`option_group`: the command declares one parameter (`launch`, `sampling`) and receives the group built into a
single object, while `--help` lists every option of the group.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from kronos_cli.core.errors import KronosError
from kronos_cli.market.sessions import check_calendar_name

CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="YAML config file, or the name of a shipped config such as demo (`kronos config ls`) [default: built-in "
    "defaults].",
)
OVERRIDES = typer.Argument(
    None, help="Dotted overrides, e.g. data.instrument=csi800 training.epochs=5.", show_default=False
)
SETS = typer.Option(None, "--set", help="An override (key=value); may be repeated.", show_default=False)
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")
JSON = typer.Option(False, "--json", help="Print a JSON summary on stdout (logs stay on stderr).")
BUNDLE = typer.Option(None, "--bundle", help="A kronos_finetuned.pth from `kronos export`.")
TIMESTAMP_COLUMN = typer.Option(
    None,
    "--timestamp-column",
    help="The column of timestamps [default: timestamps, timestamp, datetime, date or time].",
)
TIMESTAMP_FORMAT = typer.Option(
    None,
    "--timestamp-format",
    help="How the timestamps are written: a strptime format such as %d/%m/%Y %H:%M, or epoch_s, epoch_ms, "
    "epoch_us, epoch_ns [default: detected from the whole column: ISO, YYYYMMDD, epoch numbers by magnitude, "
    "day or month first when a day above 12 shows which].",
)
DTYPE = typer.Option(
    "auto",
    "--dtype",
    help="Forecasting precision: fp32 (exact), bf16 or fp16 (faster on GPUs; their deviation from fp32 on a "
    "sample of windows is reported), or auto: bf16 on CUDA where that check passes on the split's windows, else "
    "fp32 (and fp32 for one day's signals).",
)
CALENDAR = typer.Option(
    None,
    "--calendar",
    help="Continue the forecast's timestamps on this market calendar: an exchange_calendars name (XSHG, XNYS, "
    "XHKG, ...), 24/7 or forex (24/5) [default: the run's with -c, else the one all the bars given follow: 24/7, "
    "forex, a known exchange's holidays, else their own times of day and weekdays].",
)


def check_calendar(name: str | None) -> None:
    """A --calendar that names no calendar is a one-line error before anything loads."""
    problem = check_calendar_name(name) if name else None
    if problem:
        raise KronosError(problem.replace("data.csv.calendar", "--calendar"))


# name -> (type, option): torchrun's flags and meanings (nproc per node).
LAUNCH = {
    "gpus": (int | None, typer.Option(None, "--gpus", help="One worker per GPU (NCCL), through torch elastic.")),
    "nproc": (int | None, typer.Option(None, "--nproc", help="CPU workers per node (gloo), through torch elastic.")),
    "nnodes": (int, typer.Option(1, "--nnodes", help="Number of nodes (torchrun's --nnodes).")),
    "node_rank": (int | None, typer.Option(None, "--node-rank", help="This node's rank (torchrun's --node-rank).")),
    "rdzv_endpoint": (str | None, typer.Option(None, "--rdzv-endpoint", help="HOST:PORT of the c10d rendezvous.")),
    "rdzv_id": (str | None, typer.Option(None, "--rdzv-id", help="Job id shared by all nodes.")),
    "max_restarts": (int, typer.Option(0, "--max-restarts", help="Restart failed workers this often.")),
    "nproc_per_node": (
        int | None,
        typer.Option(
            None,
            "--nproc-per-node",
            help="torchrun's name: workers per node, one per GPU where CUDA is available (as --gpus), else CPU "
            "workers (as --nproc).",
        ),
    ),
    "standalone": (
        bool,
        typer.Option(False, "--standalone", help="torchrun's single-node rendezvous (the default on one node)."),
    ),
}


def build_launch(nproc_per_node: int | None = None, standalone: bool = False, **flags: Any):
    """The launcher flags as a `Launch`; torchrun's --nproc-per-node and --standalone read in its terms."""
    import torch  # imports torch: only when the command runs

    from kronos_cli.runtime.distributed import Launch

    if nproc_per_node is not None:
        if flags.get("nproc") or flags.get("gpus"):
            raise KronosError("use --nproc-per-node, or --gpus/--nproc, not both")
        flags["gpus" if torch.cuda.is_available() else "nproc"] = nproc_per_node
    if standalone and (flags.get("nnodes", 1) > 1 or flags.get("rdzv_endpoint")):
        raise KronosError("--standalone is one node with its own rendezvous; drop --nnodes and --rdzv-endpoint")
    return Launch(**flags)


def option_group(options: dict[str, tuple[Any, Any]], into: str, build: Callable[..., Any]):
    """Add `options` to a command's signature; the command's parameter `into` receives `build(**their values)`.

    Why: Typer reads a command's options from its signature, so options several commands share (the sampling
    flags, the launch flags) would otherwise be repeated as parameters in each. Here they are declared once and
    spliced into each signature; the command declares one placeholder parameter (`into`) that receives the built
    group. Without it, a flag changed in one command drifts from the same flag in the others."""

    def decorate(command: Callable) -> Callable:
        sig = inspect.signature(command, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != into]
        extra = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=tp)
            for name, (tp, opt) in options.items()
        ]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            group = build(**{name: kwargs.pop(name) for name in options})
            return command(*args, **{into: group}, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=[*keyword, *extra])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **{n: t for n, (t, _) in options.items()}}
        del wrapper.__wrapped__  # Typer must read the signature above, not the command's own
        return wrapper

    return decorate


def config_path(config: Path | None) -> Path | None:
    """-c FILE, or -c NAME of a shipped config (`-c demo` for configs/demo.yaml) when no such file exists."""
    if config is None or config.exists() or config.suffix or len(config.parts) > 1:
        return config
    from kronos_cli.configs import shipped

    named = shipped(f"{config}.yaml")
    return named if named.is_file() else config


def build_config(config: Path | None, overrides: list[str] | None, sets: list[str] | None):
    from kronos_cli.config import load  # imports pandas: only when the command runs

    return load(config_path(config), [*(overrides or []), *(sets or [])])


CONFIG_OPTIONS = {
    "config": (Path | None, CONFIG),
    "overrides": (list[str] | None, OVERRIDES),
    "sets": (list[str] | None, SETS),
}
with_config = option_group(CONFIG_OPTIONS, "cfg", build_config)  # the command receives the resolved Config
with_launcher = option_group(LAUNCH, "launch", build_launch)  # the command receives a Launch
