"""`kronos demo`: the whole job on the embedded default in a few minutes on a CPU."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console


def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("kronos-demo"), "--out", help="Where the market, data and runs go."),
    overrides: list[str] | None = opt.OVERRIDES,
    force: bool = typer.Option(False, "--force", help="Redo every stage."),
    json_out: bool = opt.JSON,
) -> None:
    """Synthetic Qlib market -> prep -> tiny tokenizer and predictor from scratch -> backtest -> export ->
    evaluate (the leaderboard: did training beat the last close?). Writes <out>/config.yaml for the commands
    that take -c, and ends with the next commands to try."""
    from kronos_cli.cli.pipeline import report, run_with_cli
    from kronos_cli.configs import shipped
    from kronos_cli.demo import demo_overrides, ensure_bars, ensure_market, write_config
    from kronos_cli.distributed import Launch
    from kronos_cli.evaluate.run import saved_evaluation
    from kronos_cli.model.bundle import BUNDLE_NAME
    from kronos_cli.runs import export_dir

    out = out.expanduser().resolve()
    ensure_market(out)
    cfg = opt.build_config(shipped("demo.yaml"), demo_overrides(out, overrides or []), None)
    config = write_config(cfg, out)
    bars = ensure_bars(out)
    result = run_with_cli(ctx, cfg, "cpu", Launch(), None, None, force, None, json_out)
    result.paths["config"] = str(config)
    saved = None if json_out or result.stages.get("evaluate") != "skipped" else saved_evaluation(cfg)
    if saved is not None:  # nothing changed since the last run: its leaderboard, as it ended then
        result.results["evaluate"] = saved
    report(result, json_out)
    if not json_out:
        _next_commands(config, bars, export_dir(cfg) / BUNDLE_NAME)


def _shown(path: Path) -> str:
    """A path as the user would type it here: relative to the working directory when inside it."""
    try:
        path = path.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.quote(str(path))


def _next_commands(config: Path, bars: Path, bundle: Path) -> None:
    """What to try next with the demo's run, its paths as this run used them."""
    c, b = _shown(config), _shown(bundle)
    steps = [
        (f"kronos signals -c {c}", "the ranking of the data's last day, by the demo's models"),
        (f"kronos backtest -c {c}", "the demo's backtest, with key=value overrides of your own"),
        (f"kronos evaluate -c {c}", "the leaderboard; --models adds more to compare"),
        (f"kronos predict {_shown(bars)} --bundle {b}", "forecast a CSV of bars"),
        (f"kronos serve --bundle {b}", "the model behind an HTTP API (the serve extra)"),
    ]
    console.print("next, try:")
    for cmd, why in steps:
        console.print(f"  {cmd}  # {why}", markup=False, highlight=False)
