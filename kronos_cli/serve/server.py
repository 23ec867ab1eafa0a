"""Loading the model for serving, binding the socket and running uvicorn with its connection limits."""

from __future__ import annotations

import dataclasses
import errno
import functools
import gc
import ipaddress
import logging
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.forecast.calibrated import Calibration, sampling_for
from kronos_cli.market.sessions import check_calendar_name
from kronos_cli.records.runs import ModelPair, load_pair
from kronos_cli.serve.app import create_app
from kronos_cli.serve.connections import ConnectionLimits, GuardedHttp, Watch, fit_to_open_files
from kronos_cli.serve.draining import STRAGGLER_S, Drain, DrainingServer
from kronos_cli.serve.service import Batching, ForecastService, Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where the served weights come from: a bundle file, or a tokenizer and a predictor (Hub ids or dirs)."""

    tokenizer: str | None = None
    model: str | None = None
    bundle: str | None = None
    max_context: int | None = None  # default: what the model records (its training config, or its release)
    sampling: str | None = None  # a sampling.json whose temperature and top_p become the request defaults
    strict_sampling: bool = False  # the run's own sampling.json (-c with backtest.sampling: calibrated)
    calendar: str | None = None  # the market calendar forecast timestamps continue on (None: the bars' sessions)
    run: Config | None = None  # -c CONFIG: its forecast settings come after the flags, before what the model records

    def open(self) -> tuple[ModelPair, Calibration | None]:
        """The model pair and the calibration (a sampling.json) of requests that do not choose their sampling."""
        if self.bundle is not None and (self.tokenizer or self.model):
            raise KronosError("pass either bundle or tokenizer and model, not both", ("bundle", "tokenizer", "model"))
        if self.bundle is None and not (self.tokenizer and self.model):
            raise KronosError(
                "say what to serve: tokenizer and model (Hub ids or checkpoint directories), "
                "bundle FILE from `kronos export`, or config CONFIG for a run's fine-tuned models",
                ("tokenizer", "model", "bundle", "config"),
            )
        pair = load_pair(None, self.tokenizer, self.model, self.bundle)
        if self.sampling is None:
            return pair, None
        return pair, sampling_for(self.sampling, pair.weights, self.strict_sampling)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error (port in use, unknown host); port 0 lets the OS choose."""
    if not 0 <= port <= 65535:
        raise KronosError(f"port must be in 0..65535, got {port}", setting="port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise KronosError(
            f"host {host} cannot be resolved ({exc.strerror}); use an address such as 127.0.0.1", setting="host"
        ) from None
    family, _, _, _, address = infos[0]
    try:
        return socket.create_server(address, family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise KronosError(
                f"port {port} on {host} is already in use; stop what uses it or pick another port", setting="port"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise KronosError(
                f"no permission to listen on {host}:{port}; ports below 1024 need privileges, pick another port",
                setting="port",
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise KronosError(f"host {host} is not an address of this machine", setting="host") from None
        raise


def serve(
    service: ForecastService,
    sock: socket.socket,
    token: str | None = None,
    access_log: bool = True,
    on_ready: Callable[[str], None] | None = None,
    connections: ConnectionLimits = ConnectionLimits(),
    shutdown_grace_s: float = 60.0,
) -> None:
    """Serve until SIGTERM or SIGINT, which drain: the requests in flight are finished (for up to
    `shutdown_grace_s`) while new ones get 503."""
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    watch, drain = Watch(connections), Drain(shutdown_grace_s)
    app = create_app(service, token, on_ready=(lambda: on_ready(url)) if on_ready else None, watch=watch, drain=drain)
    config = uvicorn.Config(
        app,
        http=functools.partial(GuardedHttp, watch=watch),
        ws="none",
        timeout_keep_alive=connections.keep_alive_s,  # type: ignore[arg-type]  (a float is fine: a timer's delay)
        timeout_graceful_shutdown=int(STRAGGLER_S),
        log_config=None,
        access_log=access_log,
        lifespan="on",
        server_header=False,
    )
    # What is loaded by now (the model, the modules) lives as long as the process: the cyclic collector need not
    # walk it again at every full collection (each would hold the GIL for ~100 ms).
    gc.collect()
    gc.freeze()
    server = DrainingServer(config, drain)
    server.run(sockets=[sock])
    if not server.started:
        raise RuntimeError("the server did not start; see the log above")


def token_from_env(name: str | None) -> str | None:
    """The bearer token from the environment variable `name` (never from a flag, a config or a log)."""
    if name is None:
        return None
    token = os.environ.get(name, "")
    if not token:
        raise KronosError(
            f"token_env {name}: the environment variable {name} is not set or empty; export {name}=<token> first",
            setting="token_env",
        )
    return token


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    token: str | None = None
    access_log: bool = True
    shutdown_grace_s: float | None = None  # how long a shutdown finishes requests in flight (None: request timeout)

    def __post_init__(self) -> None:
        grace = self.shutdown_grace_s
        if grace is not None and not (grace >= 0 and math.isfinite(grace)):
            raise KronosError(
                f"shutdown_grace_s must be >= 0 seconds, got {self.shutdown_grace_s}", setting="shutdown_grace_s"
            )


def open_service(
    source: ModelSource, limits: Limits, batching: Batching, device: str | None
) -> tuple[ForecastService, ModelPair]:
    """The forecasting service over the loaded model (not started), and the model pair it forecasts with."""
    pair, calibration = source.open()
    spec = pair.resolve(source.run, context=source.max_context, horizon=1, device=device)  # requests: their horizon
    calendar = source.calendar or pair.conventions.calendar  # else the calendar the model records
    if calendar and check_calendar_name(calendar):
        raise KronosError(
            f"the model records its market's sessions as {str(calendar)[:40]!r}, which names no market this version "
            "knows; pass calendar to choose one (`kronos serve --help` lists them)",
            setting="calendar",
        )
    sources = {k: pair.sources[k] for k in ("tokenizer", "model")}
    service = ForecastService(
        pair.forecaster(spec), limits, batching, sources, spec.trained_lookback, calibration, calendar
    )
    return service, pair


def run(
    source: ModelSource,
    limits: Limits,
    batching: Batching,
    options: ServeOptions,
    on_ready: Callable[[str], None],
    connections: ConnectionLimits = ConnectionLimits(),
) -> None:
    """Bind (a taken port fails before the model loads), load, warm up, and serve until interrupted."""
    connections = dataclasses.replace(connections, max_connections=fit_to_open_files(connections.max_connections))
    sock = bind(options.host, options.port)
    try:
        service, _ = open_service(source, limits, batching, options.device)
        forecaster, sources = service.forecaster, service.sources
        if options.token is None and not is_loopback(options.host):
            log.warning(
                "listening on %s without a token (token_env): anyone who can reach this machine can use the model",
                options.host,
            )
        log.info(
            "serving tokenizer %s and model %s on %s (max batch %d, wait %g ms, queue %d paths, timeout %g s)",
            sources["tokenizer"],
            sources["model"],
            forecaster.device,
            batching.max_batch,
            batching.max_wait_ms,
            batching.max_queue,
            batching.request_timeout_s,
        )
        grace = options.shutdown_grace_s if options.shutdown_grace_s is not None else batching.request_timeout_s
        serve(service, sock, options.token, options.access_log, on_ready, connections, grace)
    finally:
        sock.close()
