"""Schemathesis hooks for the contract test: the two rules of the API that JSON Schema cannot state.

A request's bar timestamps must be strictly increasing (an order across array items, which no schema keyword
expresses; the schema's description says it). In schema-valid (positive) cases this hook renumbers the
timestamps into a daily sequence from the first generated one (its zone kept; from 2020 when its year is
outside pandas' range). With `bad_candles: refuse`, each bar's high and low must bound its open and close (an
order across fields; the field's description says it): the hook widens them. Negative cases and every other
value stay exactly as schemathesis generated them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis import GenerationMode

START = datetime(2020, 1, 1, 9, 30, tzinfo=timezone.utc)


def _start(first: object) -> datetime:
    try:
        start = datetime.fromisoformat(str(first))
    except ValueError:
        return START
    return start if 1900 <= start.year <= 2200 else START


def _order(request: dict) -> None:
    bars = request.get("bars")
    if isinstance(bars, list) and bars and all(isinstance(b, dict) and "timestamp" in b for b in bars):
        start = _start(bars[0]["timestamp"])
        for i, bar in enumerate(bars):
            bar["timestamp"] = (start + timedelta(days=i)).isoformat()


def _candles(request: dict) -> None:
    if request.get("bad_candles") != "refuse" or not isinstance(request.get("bars"), list):
        return
    for bar in request["bars"]:
        if isinstance(bar, dict) and all(
            isinstance(bar.get(k), (int, float)) for k in ("open", "high", "low", "close")
        ):
            bar["high"] = max(bar["open"], bar["high"], bar["close"])
            bar["low"] = min(bar["open"], bar["low"], bar["close"])


@schemathesis.hook
def map_case(ctx, case):
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE or not isinstance(case.body, dict):
        return case
    for request in case.body.get("requests", [case.body]):
        if isinstance(request, dict):
            _order(request)
            _candles(request)
    return case
