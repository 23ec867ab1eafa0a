"""What the MCP server offers over one loaded model: the tools `forecast` (the HTTP API's request, checks and
answer), `signals` (a run's ranked day) and `model_info`, and the run's evaluation summaries as resources.

Transport-free: `agent.server` maps these onto the protocol. A tool's argument or request mistake raises
`ToolProblem`, which the protocol answers as a tool error (the server keeps running).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kronos_cli.backtest.ranking import day_signals
from kronos_cli.config import Config
from kronos_cli.core.errors import KronosError
from kronos_cli.evaluate.run import RESULTS
from kronos_cli.records.runs import ModelPair, evaluation_dir
from kronos_cli.serve.batcher import DeadlineExceeded, QueueFull
from kronos_cli.serve.schema import ForecastRequest, ForecastResponse, field_path, request_schema
from kronos_cli.serve.service import ForecastService, RequestError

log = logging.getLogger(__name__)
SPLITS = ("val", "test")
URI = "kronos://evaluation/{split}"


class ToolProblem(KronosError):
    """A call the tool cannot answer; its message goes back to the caller as a tool error."""


class SignalsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: str = Field("latest", description="YYYY-MM-DD, or latest (the last bar of the run's data).")


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]
    output: dict[str, Any] | None = None  # the JSON Schema of the answer


def _validated(model: type[BaseModel], arguments: dict[str, Any]) -> Any:
    """The arguments as `model`, or a ToolProblem naming every offending field as `field: message`."""
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        problems = [
            f"{field_path(e.get('loc', ())) if e.get('loc') else 'arguments'}: {e['msg']}" for e in exc.errors()
        ]
        raise ToolProblem("; ".join(problems)) from None


@dataclass
class Toolbox:
    """The tools over `service` (the model and the HTTP API's limits and sampling); `cfg` is the run whose data
    `signals` ranks and whose evaluation summaries are resources (None: forecast and model_info only)."""

    service: ForecastService
    pair: ModelPair
    cfg: Config | None = None
    device: str = "cpu"
    _signals_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def specs(self) -> list[ToolSpec]:
        run = f"the run {self.cfg.run_name!r}" if self.cfg is not None else "a run (start the server with -c CONFIG)"
        return [
            ToolSpec(
                "forecast",
                "Forecast one OHLCV series: bars in (oldest first), the mean of the sample paths and the requested "
                "quantile paths out. The same request, limits and answer as POST /v1/forecast of `kronos serve`.",
                request_schema(self.service.limits),
                ForecastResponse.model_json_schema(),
            ),
            ToolSpec(
                "signals",
                f"The ranked signal table of one day of {run}: every pool member forecast with the backtest's "
                "sampling and seeds, best first (for the next day's trades with date=latest).",
                SignalsArgs.model_json_schema(),
            ),
            ToolSpec(
                "model_info",
                "The served model: tokenizer and predictor configs and sources, context, limits, sampling defaults, "
                "versions.",
                NoArgs.model_json_schema(),
            ),
        ]

    async def call(self, name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
        """The tool's JSON answer; a ToolProblem for the caller's mistakes."""
        arguments = arguments or {}
        if name == "forecast":
            return await self.forecast(_validated(ForecastRequest, arguments))
        if name == "signals":
            return await self.signals(_validated(SignalsArgs, arguments).date)
        if name == "model_info":
            _validated(NoArgs, arguments)
            return self.service.model_info()
        raise ToolProblem(f"unknown tool {name!r}; the tools are forecast, signals and model_info")

    async def forecast(self, request: ForecastRequest) -> dict[str, Any]:
        self.service.requests += 1
        try:
            return (await self.service.forecast([request]))[0]
        except (RequestError, QueueFull, DeadlineExceeded) as exc:
            self.service.rejected += isinstance(exc, RequestError)
            raise ToolProblem(str(exc)) from None

    async def signals(self, date: str) -> dict[str, Any]:
        if self.cfg is None:
            raise ToolProblem("signals needs a run: start `kronos mcp` with -c CONFIG (the run whose data to rank)")
        cfg = self.cfg
        forecaster = self.pair.forecaster(self.pair.resolve(cfg, device=self.device))
        async with self._signals_lock:  # one day at a time: each forecasts the whole pool
            try:
                result = await asyncio.to_thread(day_signals, cfg, self.pair, forecaster, date)
            except KronosError as exc:
                raise ToolProblem(str(exc)) from None
        return result.to_json()

    def resources(self) -> list[tuple[str, str, Path]]:
        """(uri, description, file) of each evaluation summary the run has."""
        if self.cfg is None:
            return []
        found = [(s, evaluation_dir(self.cfg, s) / RESULTS) for s in SPLITS]
        return [
            (URI.format(split=s), f"`kronos evaluate` of {self.cfg.run_name!r} on the {s} split (leaderboard)", p)
            for s, p in found
            if p.is_file()
        ]

    def read(self, uri: str) -> str:
        for known, _, path in self.resources():
            if known == uri:
                return path.read_text()
        raise ToolProblem(f"no resource {uri}; resources/list names those the run has")
