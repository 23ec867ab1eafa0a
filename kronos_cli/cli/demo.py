"""`kronos demo`: the whole job on the embedded default in a few minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt


def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("kronos-demo"), "--out", help="Where the market, data and runs go."),
    overrides: list[str] | None = opt.OVERRIDES,
    force: bool = typer.Option(False, "--force", help="Redo every stage."),
    json_out: bool = opt.JSON,
) -> None:
    """Synthetic Qlib market -> prep -> tiny tokenizer and predictor from scratch -> backtest -> export ->
    evaluate (the leaderboard: did training beat the last close?)."""
    from kronos_cli.cli.pipeline import report, run_with_cli
    from kronos_cli.configs import shipped
    from kronos_cli.demo import demo_overrides, ensure_market
    from kronos_cli.distributed import Launch

    out = out.expanduser().resolve()
    ensure_market(out)
    cfg = opt.build_config(shipped("demo.yaml"), demo_overrides(out, overrides or []), None)
    result = run_with_cli(ctx, cfg, "cpu", Launch(), None, None, force, None, json_out)
    report(result, json_out)
