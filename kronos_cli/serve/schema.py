"""The JSON bodies of the forecasting API, as pydantic models (they are also the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

# The largest price, volume or amount a bar may carry: the model normalises in float32, whose squares overflow
# near 1.8e19, so a larger value could not give a finite forecast (1e18 is still far above any real turnover).
MAX_VALUE = 1e18
Price = Annotated[float, Field(gt=0, le=MAX_VALUE, allow_inf_nan=False)]
Quantity = Annotated[float, Field(ge=0, le=MAX_VALUE, allow_inf_nan=False)]
Quantile = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


def _text_only(value: Any) -> Any:
    """A timestamp must be ISO 8601 text: pydantic would otherwise read a number as seconds since 1970."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time string such as 2024-01-02T09:30:00+08:00")
    return value


class Bar(BaseModel):
    """One input bar. `volume` and `amount` are optional but must be given for every bar or for none."""

    model_config = ConfigDict(extra="forbid")

    timestamp: Annotated[datetime, BeforeValidator(_text_only)] = Field(
        validation_alias=AliasChoices("timestamp", "timestamps", "date", "datetime"),
        description="ISO 8601 date-time (an offset such as +08:00 optional); bars must be strictly increasing.",
    )
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Quantity | None = None
    amount: Quantity | None = None


class ForecastRequest(BaseModel):
    """One series to forecast and how to sample it (the defaults are the reference's, or the server's calibrated
    temperature and top_p)."""

    model_config = ConfigDict(extra="forbid")

    bars: list[Bar] = Field(description="The history, oldest first; the last max_context bars are used.")
    pred_len: int = Field(ge=1, description="Bars to forecast (at most the server's max_pred_len).")
    lookback: int | None = Field(
        None,
        ge=2,
        description="Use at most the last `lookback` bars (all of them when fewer are given) [default: the lookback "
        "the model was trained with when it "
        "records one, else all, up to the model's max_context].",
    )
    temperature: float | None = Field(
        None,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="Sampling temperature [default: the server's, from its sampling file, else 1.0; "
        "GET /v1/model shows it].",
    )
    top_p: float | None = Field(
        None,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Nucleus sampling threshold [default: the server's, from its sampling file, else 0.9].",
    )
    top_k: int = Field(0, ge=0, description="Top-k sampling (0 = off, 1 = greedy).")
    samples: int = Field(1, ge=1, description="Sample paths; the forecast is their mean.")
    seed: int | None = Field(
        None, ge=0, le=2**53 - 1, description="Seed for a reproducible forecast (a JSON-safe integer, below 2^53)."
    )
    quantiles: list[Quantile] = Field(
        default_factory=list, max_length=99, description="Quantiles of the sample paths to return, e.g. [0.1, 0.9]."
    )
    raw: bool = Field(
        False,
        description="Keep the model's sampled bars as they are; by default each path's bars are mended into valid "
        "candles first (high >= max(open, close), low <= min(open, close), volume and amount >= 0).",
    )
    bad_candles: Literal["repair", "refuse"] = Field(
        "repair",
        description="Input bars whose high is below the open or close, or whose low is above them: 'repair' widens "
        "them to the body (counted in input_bars_repaired), 'refuse' answers 422 naming the first.",
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[ForecastRequest] = Field(min_length=1, description="Series to forecast in one call.")


class ForecastBar(BaseModel):
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    amount: float


class ForecastResponse(BaseModel):
    bars: list[ForecastBar] = Field(description="The mean of the sample paths.")
    quantiles: dict[str, list[ForecastBar]] = Field(
        default_factory=dict,
        description="Per requested quantile (its number as the key), bars of that quantile of the sample paths; the "
        "close's from the bands of the server's sampling file when it has them (GET /v1/model shows them).",
    )
    lookback: int = Field(description="History bars the forecast used.")
    pred_len: int
    samples: int
    seed: int | None
    repaired_bars: float | None = Field(
        description="The share of sampled bars mended into valid candles before the mean and quantiles (null: raw)."
    )
    input_bars_repaired: int = Field(
        0, description="Lookback bars whose high or low did not bound their open and close, widened to the body."
    )
    clipped_values: int = Field(
        0,
        description="Sampled values outside the plausible range (the tokenizer's range: the lookback mean plus or "
        "minus clip standard deviations; prices at least 1% of the lookback mean, volumes at least 0), clipped to it.",
    )


class BatchResponse(BaseModel):
    forecasts: list[ForecastResponse]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str = Field(description="The first problem, as `field: message`.")
    field: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'bars', 3, 'close') -> 'bars[3].close'; the body itself is 'body'."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or "body"


def _all_or_none(name: str) -> dict[str, Any]:
    """Every bar gives `name`, or none does (null counts as not given)."""
    return {
        "anyOf": [
            {"items": {"required": [name], "properties": {name: {"type": "number"}}}},
            {"items": {"properties": {name: {"type": "null"}}}},
        ]
    }


def with_limits(schema: dict[str, Any], limits: Any) -> dict[str, Any]:
    """The OpenAPI schema with what this server enforces beyond the models' own constraints: its request limits
    (`Limits`: min_bars, max_pred_len, max_samples, max_series) and volume/amount on every bar or none.

    What JSON Schema cannot say stays in the descriptions and is answered 422 naming the field: timestamps
    strictly increasing, and a forecast that stays finite."""
    models = schema["components"]["schemas"]
    _limit_request(models["ForecastRequest"], limits)
    models["BatchRequest"]["properties"]["requests"]["maxItems"] = limits.max_series
    return schema


def _limit_request(request: dict[str, Any], limits: Any) -> None:
    props = request["properties"]
    props["bars"].update(minItems=limits.min_bars, allOf=[_all_or_none("volume"), _all_or_none("amount")])
    props["pred_len"]["maximum"] = limits.max_pred_len
    props["samples"]["maximum"] = limits.max_samples


def request_schema(limits: Any) -> dict[str, Any]:
    """The JSON Schema of one `ForecastRequest` with this server's limits (as `with_limits` puts them into the
    OpenAPI document): the input schema of the MCP `forecast` tool."""
    schema = ForecastRequest.model_json_schema()
    _limit_request(schema, limits)
    return schema
