"""Request bodies parsed off the event loop: json.loads in slices gives json.loads' value or error for any text;
odd bodies get the answers FastAPI gave when it parsed them; a checked request keeps none of its bars."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kronos_cli.serve import sliced_json
from kronos_cli.serve.schema import ForecastRequest
from kronos_cli.serve.service import Limits, prepare
from tests.serve.conftest import bars_json, series

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=4), inner, max_size=6)
)
LAYOUTS = st.sampled_from([{}, {"indent": 1}, {"separators": (",", ":")}, {"indent": "\t", "ensure_ascii": False}])


def _outcome(loads, text):
    try:
        return "value", json.dumps(loads(text))  # NaN compares equal as text; 1 and 1.0 stay apart
    except json.JSONDecodeError as exc:
        return "error", exc.msg, exc.pos
    except ValueError as exc:  # bytes in no UTF encoding
        return "error", type(exc).__name__


@settings(max_examples=300, deadline=None)
@given(VALUES, LAYOUTS, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32", None]))
def test_sliced_loads_gives_json_loads_value(value, layout, encoding):
    text = json.dumps(value, **layout)
    raw = text if encoding is None else text.encode(encoding)
    assert _outcome(sliced_json.loads, raw) == _outcome(json.loads, raw)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.data())
def test_sliced_loads_refuses_what_json_loads_refuses(value, data):
    text = json.dumps(value, separators=(",", ":"))
    at = data.draw(st.integers(0, len(text)))
    edit = data.draw(st.sampled_from(["drop", "insert", "cut"]))
    if edit == "drop":
        text = text[:at] + text[at + 1 :]
    elif edit == "insert":
        text = text[:at] + data.draw(st.sampled_from(list('{}[],:" 1a.-e'))) + text[at:]
    else:
        text = text[:at]
    assert _outcome(sliced_json.loads, text) == _outcome(json.loads, text)


def test_sliced_loads_walks_long_arrays_of_bars():
    """The shape it is for: a request of many bars, alone and in a batch call."""
    one = {"bars": bars_json(series(300)), "pred_len": 2, "quantiles": [0.1, 0.9]}
    for doc in (one, {"requests": [one, {**one, "bars": one["bars"][:20]}]}):
        text = json.dumps(doc)
        assert sliced_json.loads(text) == json.loads(text)
        assert sliced_json.loads(json.dumps(doc, indent=2).encode()) == doc


GOOD = json.dumps({"bars": bars_json(series(40)), "pred_len": 2, "seed": 1})
NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"
# body, Content-Type -> status, field, error: what FastAPI answered when it parsed the bodies itself
ODD = {
    "empty": (b"", "application/json", 422, "body", "body: Field required"),
    "empty without a type": (b"", None, 422, "body", "body: Field required"),
    "JSON sent as text/plain": (GOOD.encode(), "text/plain", 422, "body", f"body: {NOT_AN_OBJECT}"),
    "JSON without a type": (GOOD.encode(), None, 422, "body", f"body: {NOT_AN_OBJECT}"),
    "Latin-1": ('{"bars": "\xe9"}'.encode("latin-1"), "application/json", 400, "body", "send UTF-8 JSON"),
    "UTF-16": (GOOD.encode("utf-16"), "application/json", 200, None, None),
    "broken JSON": (b'{"bars": [', "application/json", 422, "body", "body: not valid JSON (Expecting value)"),
    "an array": (b"[1, 2]", "application/json", 422, "body", f"body: {NOT_AN_OBJECT}"),
    "null": (b"null", "application/json", 422, "body", f"body: {NOT_AN_OBJECT}"),
    "a charset": (GOOD.encode(), "application/json; charset=utf-8", 200, None, None),
    "a +json type": (GOOD.encode(), "application/vnd.api+json", 200, None, None),
    "nested too deeply": (b"[" * 50_000 + b"]" * 50_000, "application/json", 400, "body", "send UTF-8 JSON"),
}


@pytest.mark.parametrize("name", list(ODD))
def test_odd_bodies_get_the_answers_fastapi_gave(server, name):
    raw, content_type, status, field, error = ODD[name]
    got_status, got, _ = server.call("POST", "/v1/forecast", raw=raw, headers={"Content-Type": content_type or ""})
    assert got_status == status, got
    if error is not None:
        assert got["field"] == field and error in got["error"], got


def test_a_checked_request_keeps_none_of_its_bars():
    """Seen in an audit: 16 bodies of 7.7 MB at once took the server from 351 MB to 2.2 GB; a request waiting for
    the model kept every bar (about 1 KB each as Python objects) and a view of all their features."""
    req = ForecastRequest.model_validate({"bars": bars_json(series(5000)), "pred_len": 3})
    p = prepare(req, Limits(), 64)
    assert p.request.bars == [] and p.request.pred_len == 3
    assert p.job.x.shape == (64, 6) and p.job.x.base is None  # its own 64 rows, not a view of 5,000
