"""`kronos predict`: forecast the bars of a CSV file."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import StepProgress, console, print_json

log = logging.getLogger("kronos_cli.cli")

DEFAULT_TOKENIZER = "NeoQuasar/Kronos-Tokenizer-base"
DEFAULT_MODEL = "NeoQuasar/Kronos-small"


# name -> (type, option): the flags of `forecast.spec.resolve_sampling` (named as its arguments, so that its errors
# read as these flags), plus the calibration file.
SAMPLING = {
    "paths": (int, typer.Option(1, "--samples", help="Sample paths, averaged (and used for quantiles).")),
    "temperature": (
        float | None,
        typer.Option(None, "--temperature", help="Sampling temperature [default: the --sampling file's, else 1.0]."),
    ),
    "top_p": (
        float | None,
        typer.Option(None, "--top-p", help="Nucleus sampling threshold [default: the --sampling file's, else 0.9]."),
    ),
    "calibrated": (
        Path | None,
        typer.Option(
            None,
            "--sampling",
            help="A sampling.json from `kronos evaluate --tune-sampling`: its temperature and top_p, and its "
            "calibrated bands for the close's quantiles.",
        ),
    ),
    "top_k": (int, typer.Option(0, "--top-k", help="Top-k sampling (0 = off, 1 = greedy).")),
    "seed": (int | None, typer.Option(None, "--seed", help="Seed for reproducible sampling.")),
}


LOOKBACK = typer.Option(
    None,
    "--lookback",
    help="History rows to use [default: the lookback the model was trained with, else all rows up to the context].",
)
RAW = typer.Option(
    False,
    "--raw",
    help="Keep the model's sampled bars; by default each path's bars are mended into valid candles (high >= "
    "max(open, close) >= min(open, close) >= low, volume and amount >= 0) before the mean and quantiles.",
)

MAX_CONTEXT = typer.Option(
    None,
    "--max-context",
    help="Model context [default: the -c config's data.max_context, else what the model records: 2048 for "
    "Kronos-mini, 512 for -small and -base, the training config's for a fine-tuned one].",
)
COMPILE = typer.Option(
    None,
    "--compile",
    help="Compile the decode step with torch.compile: auto (when the steps pay for it), on, off [default: the -c "
    "config's forecast.compile, else auto].",
)
RUN_CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="A run's config: its fine-tuned models (unless --tokenizer/--model or --bundle), its data.max_context and "
    "its market calendar (data.csv.calendar, unless --calendar).",
)
BAD_CANDLES = typer.Option(
    "repair",
    "--bad-candles",
    help="Input bars whose high is below the open or close, or whose low is above them: 'repair' widens them to "
    "the body and says how many, 'refuse' stops with the first one.",
)


@opt.option_group(SAMPLING, "sampling", lambda **flags: flags)
def predict(
    csv: Path = typer.Argument(..., help="CSV with columns timestamps, open, high, low, close[, volume, amount]."),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help=f"Hub id or directory [default: {DEFAULT_TOKENIZER}]."
    ),
    model: str | None = typer.Option(None, "--model", help=f"Hub id or directory [default: {DEFAULT_MODEL}]."),
    bundle: Path | None = opt.BUNDLE,
    config: Path | None = RUN_CONFIG,
    lookback: int | None = LOOKBACK,
    pred_len: int = typer.Option(120, "--pred-len", help="Bars to forecast."),
    device: str = opt.DEVICE,
    max_context: int | None = MAX_CONTEXT,
    compile: str | None = COMPILE,
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the forecast CSV here [default: stdout]."),
    quantiles: str | None = typer.Option(None, "--quantiles", help="Comma-separated, e.g. 0.1,0.9."),
    plot: Path | None = typer.Option(None, "--plot", help="Save a PNG of history and forecast."),
    calendar: str | None = opt.CALENDAR,
    timestamp_column: str | None = opt.TIMESTAMP_COLUMN,
    timestamp_format: str | None = opt.TIMESTAMP_FORMAT,
    raw: bool = RAW,
    bad_candles: str = BAD_CANDLES,
    json_out: bool = opt.JSON,
    sampling=None,
) -> None:
    """Forecast the next bars of a series from a CSV file."""
    from kronos_cli.forecast.series import forecast_series, parse_quantiles
    from kronos_cli.forecast.spec import resolve_sampling
    from kronos_cli.market.barfile import TimestampSpec, read_bars
    from kronos_cli.market.bars import check_history

    calibration_file = sampling.pop("calibrated")
    given = {"horizon": pred_len, "context": max_context, "lookback": lookback, "compile": compile}
    asked = _check_flags(given, calendar, sampling, calibration_file, bad_candles)
    qs = parse_quantiles(quantiles)
    stamps = TimestampSpec(timestamp_column, timestamp_format, "--timestamp-column", "--timestamp-format")
    cfg = opt.build_config(config, None, None) if config is not None else None
    bars = read_bars(csv, stamps)
    check_history(len(bars), str(csv))  # before any model is loaded
    pair = _pair(cfg, tokenizer, model, bundle)
    calibration = _calibration(pair, calibration_file, sampling["paths"], qs)
    spec = pair.resolve(cfg, **asked, sampling=resolve_sampling(**sampling, calibration=calibration), device=device)
    calendar, chosen_by = market_calendar(calendar, cfg, pair.conventions, len(bars))
    forecaster = pair.forecaster(spec)
    log.info("forecasting %d bars of %s on %s (context %d)", pred_len, csv, forecaster.device, spec.context)
    with StepProgress("forecasting", pred_len) as bar:
        result = forecast_series(
            forecaster,
            bars,
            spec,
            quantiles=qs,
            progress=bar.update,
            calendar=calendar,
            raw=raw,
            bad_candles=bad_candles,
            bands=calibration.bands if calibration else None,
        )
    _write(result, output, plot, f"{csv.name}: {pred_len}-bar forecast", json_out, chosen_by)


def _pair(cfg, tokenizer: str | None, model: str | None, bundle: Path | None):
    """The models: the bundle, else --tokenizer and --model, each else the run's (-c), else the released ones."""
    from kronos_cli.records.runs import load_pair

    if bundle is None and cfg is None:
        tokenizer, model = tokenizer or DEFAULT_TOKENIZER, model or DEFAULT_MODEL
    return load_pair(cfg, tokenizer, model, str(bundle) if bundle else None)


def market_calendar(flag: str | None, cfg, conventions, bars: int) -> tuple[str | None, str]:
    """The calendar the forecast continues on and what chose it: --calendar, else the run's (-c), else the one
    the model records, else none (inferred from all the bars)."""
    from kronos_cli.core.errors import KronosError
    from kronos_cli.market.sessions import check_calendar_name
    from kronos_cli.records.runs import run_calendar

    if flag:
        return flag, "--calendar"
    if cfg is not None and run_calendar(cfg):
        return run_calendar(cfg), f"the run's data.csv.calendar, {cfg.config_file or '-c'}"
    recorded = conventions.calendar
    if recorded:
        if not isinstance(recorded, str) or check_calendar_name(recorded):
            raise KronosError(
                f"the model records the market calendar {str(recorded)[:40]!r}, which is not a known calendar; "
                f"pass --calendar"
            )
        return recorded, "the one the model was trained on"
    return None, f"inferred from the {bars} bars given; --calendar or -c CONFIG to set it"


def _check_flags(
    asked: dict, calendar: str | None, sampling: dict, calibration: Path | None, bad_candles: str = "repair"
) -> dict:
    """Bad flags fail before any file or model is read (the library's own checks, on the flags alone); returns the
    forecast settings they give."""
    from kronos_cli.core.errors import KronosError
    from kronos_cli.forecast.spec import ForecastSpec, resolve_sampling
    from kronos_cli.market.bars import BAD_CANDLES

    if bad_candles not in BAD_CANDLES:
        raise KronosError(f"--bad-candles must be one of {', '.join(BAD_CANDLES)}, got {bad_candles[:40]!r}")
    if calibration is not None:
        from kronos_cli.forecast.calibrated import read_sampling

        read_sampling(calibration)
    flags = {**asked, "context": asked["context"] or 2, "compile": asked["compile"] or "auto"}
    ForecastSpec(**flags, sampling=resolve_sampling(**sampling))
    opt.check_calendar(calendar)
    return asked


def _calibration(pair, path: Path | None, paths: int, quantiles: tuple[float, ...]):
    """The --sampling file, checked against the model's weights (a warning when it was tuned for others)."""
    if path is None:
        return None
    from kronos_cli.forecast.calibrated import sampling_for

    calibration = sampling_for(path, pair.weights, strict=False)
    _note_bands(calibration.bands, paths, quantiles)
    return calibration


def _note_bands(bands, paths: int, quantiles: tuple[float, ...]) -> None:
    if bands is None or not quantiles:
        return
    log.info("the close's quantiles come from the bands the --sampling file calibrated on the validation split")
    if paths > max(bands.tables):
        log.info(
            "its bands were fitted for up to %d paths; with --samples %d they run a little wider than nominal",
            max(bands.tables),
            paths,
        )


def _write(
    result, output: Path | None, plot: Path | None, title: str, json_out: bool = False, calendar_by: str = ""
) -> None:
    from kronos_cli.core.io import write_text

    if result.calendar:  # bars a week or more apart follow no session calendar
        log.info("forecast timestamps on the %s calendar (%s)", result.calendar, calendar_by)
    if result.repaired:
        log.info(
            "%.1f%% of the sampled bars were mended into valid candles (--raw keeps the model's)", 100 * result.repaired
        )
    if result.input_repaired:
        log.warning(
            "%d input bar(s) had a high below the open or close or a low above them; widened to the body "
            "(--bad-candles refuse stops instead)",
            result.input_repaired,
        )
    if result.clipped:
        log.warning(
            "%d sampled values fell outside the plausible range (the tokenizer's range, prices at least 1%% of the "
            "lookback mean) and were clipped to it; check the lookback for outliers",
            result.clipped,
        )
    buf = io.StringIO()
    result.table.to_csv(buf, index=False)
    if output is None:
        if not json_out:  # --json prints the forecast in the JSON instead
            console.file.write(buf.getvalue())
    else:
        write_text(output, buf.getvalue())
        log.info("wrote %s", output)
    if plot is not None:
        from kronos_cli.report.plots import plot_forecast

        plot_forecast(
            result.history["timestamps"],
            result.history["close"],
            result.table["timestamps"],
            result.table["close"],
            result.close_band(),
            plot,
            title=title,
        )
        log.info("wrote %s", plot)
    if json_out:
        print_json({**result.to_json(), "output": str(output) if output else None, "plot": str(plot) if plot else None})
