"""`kronos mcp`: the model as a Model Context Protocol server for agents (stdio, or streamable HTTP)."""

from __future__ import annotations

from pathlib import Path

import typer

from kronos_cli.cli import options as opt
from kronos_cli.cli.common import console, ready_announcer
from kronos_cli.cli.serve import BATCHING, LIMITS, _batching, _from_run, _limits

TRANSPORTS = ("stdio", "http")


def _check_sdk() -> None:
    from kronos_cli.core.errors import KronosError

    try:
        import mcp.server  # noqa: F401
    except ImportError:
        raise KronosError("kronos mcp needs the MCP Python SDK; pip install 'kronos-cli[mcp]'") from None


@opt.option_group(BATCHING, "batching", _batching)
@opt.option_group(LIMITS, "limits", _limits)
def mcp(
    bundle: Path | None = opt.BUNDLE,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="The run whose data `signals` ranks and whose evaluation summaries are resources [default without "
        "--bundle: its fine-tuned models too].",
    ),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="Tokenizer: Hub id or directory."),
    model: str | None = typer.Option(None, "--model", help="Predictor: Hub id or directory."),
    transport: str = typer.Option("stdio", "--transport", help="stdio, or http (streamable HTTP at /mcp)."),
    host: str = typer.Option("127.0.0.1", "--host", help="With --transport http: the address to listen on."),
    port: int = typer.Option(8000, "--port", help="With --transport http: the port (0 = any free port)."),
    token_env: str | None = typer.Option(
        None,
        "--token-env",
        help="With --transport http: require `Authorization: Bearer <token>`, the token read from this environment "
        "variable.",
    ),
    max_context: int | None = typer.Option(None, "--max-context", help="Model context [default: as kronos serve]."),
    device: str = opt.DEVICE,
    json_out: bool = typer.Option(
        False, "--json", help="With --transport http: announce readiness as one JSON line on stdout."
    ),
    limits=None,
    batching=None,
) -> None:
    """Serve the model to agents over MCP: tools forecast, signals and model_info; the run's evaluation summaries
    as resources."""
    import anyio

    from kronos_cli.core.errors import KronosError

    _check_sdk()
    if transport not in TRANSPORTS:
        raise KronosError(f"--transport must be stdio or http, got {transport!r}")
    from kronos_cli.agent.server import run_http, run_stdio
    from kronos_cli.agent.tools import Toolbox
    from kronos_cli.serve.server import ModelSource, bind, is_loopback, open_service, token_from_env

    token = token_from_env(token_env)
    cfg = opt.build_config(config, None, None) if config is not None else None
    source = ModelSource(tokenizer, model, str(bundle) if bundle else None, max_context)
    if bundle is None and config is not None:
        source = _from_run(source, config)
    sock = bind(host, port) if transport == "http" else None
    service, pair = open_service(source, limits, batching, device)
    box = Toolbox(service, pair, cfg, str(service.forecaster.device))
    if sock is None:
        anyio.run(run_stdio, box)
        return
    if token is None and not is_loopback(host):
        console.print(f"warning: listening on {host} without --token-env: anyone who can reach it can use the model")
    try:
        anyio.run(run_http, box, sock, token, ready_announcer("mcp", json_out))
    finally:
        sock.close()
