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
    walkforward: bool = typer.Option(
        False, "--walkforward", help="Run a short walk-forward instead (four quarterly folds, `kronos walkforward`)."
    ),
    json_out: bool = opt.JSON,
) -> None:
    """Synthetic Qlib market -> prep -> tiny tokenizer and predictor from scratch -> backtest -> export ->
    evaluate (the leaderboard: did training beat the last close?). Writes <out>/config.yaml for the commands
    that take -c, and ends with the next commands to try."""
    from kronos_cli.cli.pipeline import report, run_with_cli
    from kronos_cli.configs import shipped
    from kronos_cli.evaluate.run import saved_evaluation
    from kronos_cli.model.bundle import BUNDLE_NAME
    from kronos_cli.records.runs import export_dir
    from kronos_cli.runtime.distributed import Launch
    from kronos_cli.workflows.demo import demo_overrides, ensure_bars, ensure_market, write_config

    out = out.expanduser().resolve()
    ensure_market(out)
    if walkforward:
        _walkforward_demo(ctx, out, overrides or [], force, json_out)
        return
    cfg = opt.build_config(shipped("demo.yaml"), demo_overrides(out, overrides or []), None)
    config = write_config(cfg, out)
    bars = ensure_bars(out)
    result = run_with_cli(ctx, cfg, "cpu", Launch(), None, None, force, None, json_out)
    result.paths["config"] = str(config)
    pages = _pages(cfg)
    result.paths |= pages
    saved = None if json_out or result.stages.get("evaluate") != "skipped" else saved_evaluation(cfg)
    if saved is not None:  # nothing changed since the last run: its leaderboard, as it ended then
        result.results["evaluate"] = saved
    report(result, json_out)
    if not json_out:
        _next_commands(config, bars, export_dir(cfg) / BUNDLE_NAME)
        _print_pages(pages)


def _walkforward_demo(ctx: typer.Context, out: Path, overrides: list[str], force: bool, json_out: bool) -> None:
    """The demo's market and models through `kronos walkforward`; ends with the per-fold table."""
    from kronos_cli.cli.common import StepProgress, print_json
    from kronos_cli.cli.train import observer_factory
    from kronos_cli.cli.walkforward import print_walkforward
    from kronos_cli.configs import shipped
    from kronos_cli.runtime.distributed import Launch
    from kronos_cli.walkforward.folds import Training
    from kronos_cli.walkforward.run import run_walkforward
    from kronos_cli.workflows.demo import WALKFORWARD, demo_overrides

    cfg = opt.build_config(shipped("demo.yaml"), demo_overrides(out, [*WALKFORWARD, *overrides]), None)
    with StepProgress("walk-forward") as bar:
        result = run_walkforward(cfg, Training("cpu", Launch(), observer_factory(ctx, json_out)), force, bar.update)
    if json_out:
        print_json(result.to_json())
        return
    print_walkforward(result, folds_last=True)  # the answer, last: fold by fold, did refitting pay?


def _pages(cfg) -> dict[str, str]:
    """The report.html of the demo's newest backtest and evaluation (through the links to their runs)."""
    from kronos_cli.records.runs import backtest_dir, evaluation_dir
    from kronos_cli.report.page import REPORT

    pages = {
        "backtest_html": backtest_dir(cfg) / REPORT,
        "evaluation_html": evaluation_dir(cfg, cfg.evaluate.split) / REPORT,
    }
    return {k: str(p) for k, p in pages.items() if p.is_file()}


def _print_pages(pages: dict[str, str]) -> None:
    """The reports to open in a browser, last: what the demo ends with."""
    console.print("reports (open in a browser; `kronos runs ls` lists every run):")
    for label, path in pages.items():
        console.print(f"  {label.removesuffix('_html')}: {_shown(Path(path))}", markup=False, highlight=False)


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
