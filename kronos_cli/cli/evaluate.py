"""`kronos evaluate`: the fine-tuned model against where it started, other models and baselines, on one split."""

from __future__ import annotations

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import StepProgress, console, print_json, print_tables


@opt.with_launcher
@opt.with_config
def evaluate(
    models: list[str] | None = typer.Option(
        None,
        "--models",
        help="More to compare, LABEL=SPEC: a bundle, TOKENIZER,MODEL, or a predictor (with the "
        "run's tokenizer); may be repeated.",
    ),
    split: str | None = typer.Option(None, "--split", help="val or test [default: evaluate.split, test]."),
    tune_sampling: bool = typer.Option(
        False,
        "--tune-sampling",
        help="Calibrate on the validation split: temperature and top_p, and bands fitted to the paths' residuals, "
        "chosen for the lowest CRPS and written to the run's sampling.json.",
    ),
    device: str = opt.DEVICE,
    dtype: str = opt.DTYPE,
    json_out: bool = opt.JSON,
    cfg=None,
    launch=None,
) -> None:
    """Is the fine-tuned model worth it? Models and baselines scored on the same windows, with significance."""
    from kronos_cli.core.errors import KronosError
    from kronos_cli.evaluate.run import run_evaluate
    from kronos_cli.runtime.split_forecasts import Scale

    if split not in (None, "val", "test"):
        raise KronosError(f"--split must be val or test, got {split!r}")
    tuned = None
    if tune_sampling:
        from kronos_cli.evaluate.tune import tune_sampling as tune

        with StepProgress("tuning sampling") as bar:
            tuned = tune(cfg, device, progress=bar.update)
        if not json_out:
            print_tables(tuned.tables())
        cfg.backtest.sampling = "calibrated"
    with StepProgress("evaluate", unit="windows") as bar:
        result = run_evaluate(cfg, models or [], split, device, progress=bar.update, scale=Scale(dtype, launch))
    if json_out:
        print_json({**result.to_json(), **({"tuning": tuned.to_json()} if tuned else {})})
        return
    print_evaluation(result)


def print_evaluation(result, outputs: bool = True) -> None:
    print_tables(result.tables())
    for note in result.notes:
        console.print(f"note: {note}")
    for label, path in result.outputs.items() if outputs else ():
        console.print(f"{label}: {path}")
