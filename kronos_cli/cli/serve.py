"""`kronos serve`: an HTTP forecasting service with dynamic request batching."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import ready_announcer

log = logging.getLogger("kronos_cli.cli")

# name -> (type, option): what one request may ask for (checked before it joins a batch).
LIMITS = {
    "min_bars": (int, typer.Option(16, "--min-bars", help="Fewest history bars a request may send.")),
    "max_pred_len": (int, typer.Option(512, "--max-pred-len", help="Largest pred_len a request may ask for.")),
    "max_samples": (int, typer.Option(100, "--max-samples", help="Most sample paths a request may ask for.")),
    "max_series": (int, typer.Option(256, "--max-series", help="Most series in one /v1/forecast/batch call.")),
    "max_body_bytes": (int, typer.Option(8 * 2**20, "--max-body-bytes", help="Largest request body (413 above).")),
}
SERVER = {
    "host": (str, typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default).")),
    "port": (int, typer.Option(8000, "--port", help="Port (0 = any free port).")),
    "device": (str, opt.DEVICE),
    "token_env": (
        str | None,
        typer.Option(
            None,
            "--token-env",
            help="Require `Authorization: Bearer <token>` on /v1, the token read from this environment variable.",
        ),
    ),
    "access_log": (bool, typer.Option(True, "--access-log/--no-access-log", help="Log every request.")),
    "shutdown_grace_s": (
        float | None,
        typer.Option(
            None,
            "--shutdown-grace",
            help="On SIGTERM/SIGINT, seconds to finish the requests in flight while new ones get 503 "
            "[default: --request-timeout].",
        ),
    ),
}
# name -> (type, option): how long a client may take and how many may connect.
CONNECTIONS = {
    "header_timeout_s": (
        float,
        typer.Option(10.0, "--header-timeout", help="Seconds a request's headers may take to arrive (408 after)."),
    ),
    "body_timeout_s": (
        float,
        typer.Option(30.0, "--body-timeout", help="Seconds a request's body may take to arrive (408 after)."),
    ),
    "keep_alive_s": (
        float,
        typer.Option(5.0, "--keep-alive-timeout", help="Seconds an idle keep-alive connection stays open."),
    ),
    "max_connections": (
        int,
        typer.Option(
            1000,
            "--max-connections",
            help="Most open connections; beyond, the one waiting longest for its headers is closed, or the new one "
            "gets 503 (lowered to fit `ulimit -n`).",
        ),
    ),
}
BATCHING = {
    "max_batch": (
        int,
        typer.Option(
            64, "--max-batch", help="Most sample paths (series x samples) forecast together (1 = no batching)."
        ),
    ),
    "max_wait_ms": (
        float,
        typer.Option(10.0, "--max-wait-ms", help="How long the first request of a batch waits for others."),
    ),
    "max_queue": (
        int,
        typer.Option(
            1024,
            "--max-queue",
            help="Most sample paths waiting for the model; a request beyond it gets 429 with Retry-After.",
        ),
    ),
    "request_timeout_s": (
        float,
        typer.Option(
            60.0,
            "--request-timeout",
            help="Seconds a request may wait and run; past it the answer is 504 and its work is dropped.",
        ),
    ),
    "long_horizon": (
        int,
        typer.Option(
            128,
            "--long-horizon",
            help="Requests with a larger pred_len take the long lane, served in turn with the short one.",
        ),
    ),
}


def _limits(**values):
    from kronos_cli.serve.service import Limits

    return Limits(**values)


def _batching(**values):
    from kronos_cli.serve.service import Batching

    return Batching(**values)


def _server(token_env: str | None, **values):
    from kronos_cli.serve.server import ServeOptions, token_from_env

    return ServeOptions(token=token_from_env(token_env), **values)


def _connections(**values):
    from kronos_cli.serve.connections import ConnectionLimits

    return ConnectionLimits(**values)


def _from_run(source, config: Path):
    """What -c CONFIG fills in that the flags left open: the run's fine-tuned models (else the configured ones),
    its forecast settings (context, clip, trained lookback: `ModelPair.resolve`), its calibrated sampling
    (strictly its own) and its market calendar."""
    import dataclasses

    from kronos_cli.records.runs import best_or_configured, run_calendar, sampling_file

    cfg = opt.build_config(config, None, None)
    calibrated = source.sampling is None and cfg.backtest.sampling == "calibrated"
    return dataclasses.replace(
        source,
        tokenizer=source.tokenizer or best_or_configured(cfg, "tokenizer"),
        model=source.model or best_or_configured(cfg, "predictor"),
        run=cfg,
        sampling=str(sampling_file(cfg)) if calibrated else source.sampling,
        strict_sampling=calibrated,
        calendar=source.calendar or run_calendar(cfg),
    )


def _route_uvicorn_logs() -> None:
    """uvicorn's own and access logs through the same handler and level as ours."""
    ours = logging.getLogger("kronos_cli")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = list(ours.handlers) if name == "uvicorn" else []
        lg.setLevel(ours.level)
        lg.propagate = name != "uvicorn"


@opt.option_group(SERVER, "server", _server)
@opt.option_group(CONNECTIONS, "connections", _connections)
@opt.option_group(BATCHING, "batching", _batching)
@opt.option_group(LIMITS, "limits", _limits)
def serve(
    config: Path | None = opt.CONFIG,
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="Tokenizer: Hub id or directory [default with -c: the run's fine-tuned best_model]."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Predictor: Hub id or directory [default with -c: the run's fine-tuned best_model]."
    ),
    bundle: Path | None = opt.BUNDLE,
    max_context: int | None = typer.Option(
        None,
        "--max-context",
        help="Model context [default: the config's data.max_context; else what the model "
        "records (its training config, a released model's published context), else 512].",
    ),
    sampling: Path | None = typer.Option(
        None,
        "--sampling",
        help="A sampling.json from `kronos evaluate --tune-sampling`: the temperature and top_p of requests that "
        "give none, and its bands for every answer's close quantiles [default with -c and "
        "backtest.sampling=calibrated: the run's].",
    ),
    calendar: str | None = opt.CALENDAR,
    json_out: bool = typer.Option(False, "--json", help="Announce readiness as one JSON line on stdout."),
    limits=None,
    batching=None,
    connections=None,
    server=None,
) -> None:
    """Serve forecasts over HTTP: POST /v1/forecast, /v1/forecast/batch; GET /v1/model, /healthz; /docs."""
    from kronos_cli.core.errors import KronosError

    try:
        import fastapi  # noqa: F401
        import httptools  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise KronosError(
            f"kronos serve needs FastAPI and uvicorn[standard] ({exc.name} is missing); pip install 'kronos-cli[serve]'"
        ) from None
    from kronos_cli.serve.server import ModelSource, run

    source = ModelSource(
        tokenizer,
        model,
        str(bundle) if bundle else None,
        max_context,
        str(sampling) if sampling else None,
        calendar=calendar,
    )
    if bundle is None and config is not None:
        source = _from_run(source, config)
    if source.max_context is not None and source.max_context < 2:
        raise KronosError(f"--max-context must be >= 2, got {source.max_context}")
    opt.check_calendar(source.calendar)
    _route_uvicorn_logs()
    run(source, limits, batching, server, ready_announcer("serve", json_out, docs=True), connections)
