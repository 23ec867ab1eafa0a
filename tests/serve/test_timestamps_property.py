"""Any schema-valid timestamps give a prepared request or a 422 naming a field, never another exception (a 500)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from kronos_cli.serve.schema import ForecastRequest
from kronos_cli.serve.service import Limits, RequestError, prepare

offsets = st.one_of(st.none(), st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m))))


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30)),
    step_minutes=st.integers(1, 60 * 24 * 40),
    zones=st.lists(offsets, min_size=16, max_size=16),
    same_zone=st.booleans(),
)
def test_extreme_timestamps_and_offsets_prepare_or_name_a_field(start, step_minutes, zones, same_zone):
    if same_zone:
        zones = [zones[-1]] * 16
    stamps = []
    for i, tz in enumerate(zones):
        try:
            t = start + timedelta(minutes=step_minutes * i)
        except OverflowError:  # past year 9999: not something a client can send
            return
        stamps.append(t.replace(tzinfo=tz).isoformat())
    bars = [{"timestamp": s, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5} for s in stamps]
    req = ForecastRequest.model_validate({"bars": bars, "pred_len": 3})
    try:
        prepare(req, Limits(), max_context=512)
    except RequestError as exc:
        assert exc.field.startswith("bars")
