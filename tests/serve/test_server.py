"""`kronos serve` over HTTP: forecasts equal the library's, batching changes nothing, bad input gets 4xx."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from kronos_cli.forecast.series import forecast_series
from kronos_cli.forecast.spec import ForecastSpec
from kronos_cli.market.bars import FEATURES
from kronos_cli.model.sampling import Sampling
from tests.serve.conftest import bars_json, series


def _values(bars: list[dict]) -> np.ndarray:
    """The served numbers as the float32 values they write (each the shortest decimal that reads back as it)."""
    return np.array([[b[c] for c in list(FEATURES)] for b in bars], dtype=np.float32)


def test_health_model_and_openapi(server, tiny_pair):
    status, health = server.get("/healthz")
    assert status == 200 and health["status"] == "ok" and health["device"] == "cpu"
    status, info = server.get("/v1/model")
    assert status == 200
    tok, model = tiny_pair
    assert info["model"]["config"]["d_model"] == model.config.d_model
    assert info["tokenizer"]["config"]["s1_bits"] == tok.config.s1_bits
    assert info["model"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["device"] == "cpu" and info["max_context"] == 64
    assert {"kronos_cli", "torch", "fastapi", "uvicorn"} <= set(info["versions"])
    assert info["batching"] == {
        "max_batch": 64,
        "max_wait_ms": 100.0,
        "max_queue": 1024,
        "request_timeout_s": 60.0,
        "long_horizon": 128,
    }
    assert info["limits"]["max_pred_len"] == 64
    assert {"queued", "queued_paths", "max_queue", "disconnected"} <= set(health)
    assert {"rejected_queue_full", "timed_out", "abandoned_items"} <= set(health["batching"])
    status, schema = server.get("/openapi.json")
    assert status == 200
    assert {"/v1/forecast", "/v1/forecast/batch", "/v1/model", "/healthz"} <= set(schema["paths"])
    # The limits this server enforces are schema constraints; no bearer scheme without --token-env.
    request = schema["components"]["schemas"]["ForecastRequest"]["properties"]
    assert request["bars"]["minItems"] == 16 and request["pred_len"]["maximum"] == 64
    assert request["samples"]["maximum"] == 8
    assert schema["components"]["schemas"]["BatchRequest"]["properties"]["requests"]["maxItems"] == 4
    assert "securitySchemes" not in schema["components"]
    assert all("security" not in op for path in schema["paths"].values() for op in path.values())


def test_forecast_equals_the_library_for_the_same_seed(server, library_predictor):
    bars = series(50, seed=1)
    req = {
        "bars": bars_json(bars),
        "pred_len": 6,
        "samples": 4,
        "seed": 11,
        "temperature": 0.8,
        "top_p": 0.95,
        "quantiles": [0.1, 0.9],
    }
    status, got = server.post("/v1/forecast", req)
    assert status == 200, got
    sampling = Sampling(temperature=0.8, top_p=0.95, paths=4, seed=11)
    want = forecast_series(
        library_predictor, bars, ForecastSpec(6, library_predictor.max_context, sampling=sampling), (0.1, 0.9)
    )
    np.testing.assert_array_equal(_values(got["bars"]), want.table[list(FEATURES)].to_numpy())
    for q, key in ((0.1, "0.1"), (0.9, "0.9")):
        cols = [f"{c}_q{round(q * 100):02d}" for c in list(FEATURES)]
        np.testing.assert_array_equal(_values(got["quantiles"][key]), want.table[cols].to_numpy())
    stamps = pd.DatetimeIndex([b["timestamp"] for b in got["bars"]])
    assert stamps.equals(pd.DatetimeIndex(want.table["timestamps"]))
    assert (stamps.day_of_week < 5).all()  # business-day bars continue on weekdays
    assert got["lookback"] == 50 and got["samples"] == 4 and got["seed"] == 11
    assert server.post("/v1/forecast", req)[1] == got  # the same seed, the same answer
    served = [b[c] for bars in (got["bars"], *got["quantiles"].values()) for b in bars for c in FEATURES]
    assert all(v == float(str(np.float32(v))) for v in served)  # 42.648735, not float32 noise 42.64873504638672
    assert got["repaired_bars"] == want.repaired


def test_forecast_bars_are_valid_candles_unless_raw(server):
    """Each sampled path is mended before the mean and quantiles (the share said); `raw` keeps the model's bars
    and its close."""
    req = {"bars": bars_json(series(60, seed=4)), "pred_len": 10, "samples": 8, "seed": 3, "quantiles": [0.1, 0.9]}
    status, got = server.post("/v1/forecast", req)
    status_raw, raw = server.post("/v1/forecast", {**req, "raw": True})
    assert status == status_raw == 200, (got, raw)
    for bars in (got["bars"], *got["quantiles"].values()):
        v = _values(bars)
        assert (v[:, 1] >= np.maximum(v[:, 0], v[:, 3])).all() and (v[:, 2] <= np.minimum(v[:, 0], v[:, 3])).all()
        assert (v[:, 4:] >= 0).all()
    assert raw["repaired_bars"] is None and 0 <= got["repaired_bars"] <= 1
    np.testing.assert_array_equal(_values(raw["bars"])[:, 3], _values(got["bars"])[:, 3])


def test_intraday_timestamps_continue_the_spacing_and_keep_the_offset(server):
    ts = pd.date_range("2024-03-01 09:30", periods=40, freq="5min", tz="Asia/Shanghai")
    bars = series(40, seed=2).assign(timestamps=ts)
    status, got = server.post("/v1/forecast", {"bars": bars_json(bars), "pred_len": 3, "top_k": 1})
    assert status == 200, got
    # The history's last bar closes the session seen (09:30..12:45) on a Friday: the next session is Monday's.
    assert [b["timestamp"] for b in got["bars"]] == [
        "2024-03-04T09:30:00+08:00",
        "2024-03-04T09:35:00+08:00",
        "2024-03-04T09:40:00+08:00",
    ]


def _mixed_requests() -> list[dict]:
    reqs = []
    for i in range(12):
        n = 30 if i % 3 else 40  # two history lengths: two groups in one batch
        reqs.append(
            {
                "bars": bars_json(series(n, seed=10 + i)),
                "pred_len": 4 if i % 2 else 5,
                "samples": 1 + i % 3,
                "seed": 100 + i,
                "temperature": 1.0 + 0.05 * i,
                "quantiles": [0.5] if i % 4 == 0 else [],
            }
        )
    return reqs


def test_batched_equals_unbatched(server):
    reqs = _mixed_requests()
    before = server.get("/healthz")[1]["batching"]
    alone = [server.post("/v1/forecast", r) for r in reqs]  # one at a time: each runs in a batch of its own
    mid = server.get("/healthz")[1]["batching"]
    assert mid["batches"] - before["batches"] == len(reqs)
    with ThreadPoolExecutor(len(reqs)) as pool:
        together = list(pool.map(lambda r: server.post("/v1/forecast", r), reqs))
    after = server.get("/healthz")[1]["batching"]
    assert after["batches"] - mid["batches"] < len(reqs)  # the concurrent requests shared forward passes
    assert after["largest_batch"] > 1
    for (s1, a), (s2, b) in zip(alone, together):
        assert s1 == s2 == 200
        assert a == b
    status, batch = server.post("/v1/forecast/batch", {"requests": reqs[:4]})
    assert status == 200
    assert batch["forecasts"] == [a for _, a in alone[:4]]


def _good() -> dict:
    return {"bars": bars_json(series(30, seed=5)), "pred_len": 3, "seed": 1}


def _mutate(fn):
    req = _good()
    fn(req)
    return req


def _drop(col):
    def f(r):
        for b in r["bars"]:
            b.pop(col)

    return f


def _set(i, key, value):
    def f(r):
        r["bars"][i][key] = value

    return f


def _swap(r):
    r["bars"][3], r["bars"][4] = r["bars"][4], r["bars"][3]


def _dup(r):
    r["bars"][7]["timestamp"] = r["bars"][6]["timestamp"]


BAD = {
    "missing close": (_mutate(_drop("close")), 422, "bars[0].close", "required"),
    "missing timestamps": (_mutate(_drop("timestamp")), 422, "bars[0].timestamp", "required"),
    "null price": (_mutate(_set(4, "low", None)), 422, "bars[4].low", "number"),
    "text price": (_mutate(_set(4, "open", "abc")), 422, "bars[4].open", "number"),
    "unsorted": (_mutate(_swap), 422, "bars[4].timestamp", "earlier than the bar before"),
    "duplicate": (_mutate(_dup), 422, "bars[7].timestamp", "duplicates"),
    "bad timestamp": (_mutate(_set(2, "timestamp", "yesterday")), 422, "bars[2].timestamp", "datetime"),
    "volume on some bars": (_mutate(_set(9, "volume", None)), 422, "bars[9].volume", "every bar or for none"),
    "too few bars": (_mutate(lambda r: r.update(bars=r["bars"][:10])), 422, "bars", "at least 16"),
    "pred_len zero": (_mutate(lambda r: r.update(pred_len=0)), 422, "pred_len", "greater than or equal to 1"),
    "pred_len above limit": (_mutate(lambda r: r.update(pred_len=65)), 422, "pred_len", "(max_pred_len)"),
    "pred_len missing": (_mutate(lambda r: r.pop("pred_len")), 422, "pred_len", "required"),
    "samples above limit": (_mutate(lambda r: r.update(samples=9)), 422, "samples", "(max_samples)"),
    "top_p above 1": (_mutate(lambda r: r.update(top_p=1.5)), 422, "top_p", "less than or equal to 1"),
    "temperature zero": (_mutate(lambda r: r.update(temperature=0)), 422, "temperature", "greater than 0"),
    "quantile of 1": (_mutate(lambda r: r.update(quantiles=[0.5, 1.0])), 422, "quantiles[1]", "less than 1"),
    "timestamp as a number": (_mutate(_set(2, "timestamp", 1700000000)), 422, "bars[2].timestamp", "ISO 8601"),
    "year 9999": (
        _mutate(lambda r: [b.update(timestamp=b["timestamp"].replace("2024", "9999", 1)) for b in r["bars"]]),
        422,
        "bars",
        "pandas' nanosecond range",
    ),
    "seed above 2^53": (_mutate(lambda r: r.update(seed=2**53)), 422, "seed", "less than or equal to"),
    "unknown field": (_mutate(lambda r: r.update(pred_length=3)), 422, "pred_length", "not permitted"),
    "bars not a list": (_mutate(lambda r: r.update(bars={"a": 1})), 422, "bars", "list"),
    "beyond the value limit": (_mutate(_set(5, "close", 1e19)), 422, "bars[5].close", f"or equal to {10**18}"),
    "negative volume": (_mutate(_set(5, "volume", -1.0)), 422, "bars[5].volume", "greater than or equal to 0"),
    "zero price": (_mutate(_set(5, "low", 0.0)), 422, "bars[5].low", "greater than 0"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gets_422_naming_the_field(server, name):
    req, status, field, message = BAD[name]
    got_status, got = server.post("/v1/forecast", req)
    assert got_status == status, got
    assert got["field"] == field
    assert message in got["error"]


def _raw(text: str) -> bytes:
    return text.encode()


def test_nan_and_infinity_literals_are_refused(server):
    body = json.dumps(_good())
    for literal in ("NaN", "Infinity"):
        raw = body.replace('"open": ' + json.dumps(_good()["bars"][3]["open"]), f'"open": {literal}', 1)
        status, got = server.post("/v1/forecast", raw=_raw(raw))
        assert status == 422 and got["field"] == "bars[3].open" and "finite" in got["error"]


def test_body_problems(server):
    status, got = server.post("/v1/forecast", raw=b'{"bars": [')
    assert status == 422 and got["field"] == "body" and "JSON" in got["error"]
    status, got = server.post("/v1/forecast", raw=b"x" * 300_000)
    assert status == 413 and got["field"] == "body" and "200000 bytes" in got["error"]
    many = {"requests": [_good()] * 5}
    status, got = server.post("/v1/forecast/batch", many)
    assert status == 422 and got["field"] == "requests" and "(max_series)" in got["error"]
    bad = {"requests": [_good(), BAD["unsorted"][0]]}
    status, got = server.post("/v1/forecast/batch", bad)
    assert status == 422 and got["field"] == "requests[1].bars[4].timestamp"


def test_bad_requests_do_not_disturb_good_ones_sent_with_them(server):
    good = _mixed_requests()[:6]
    expected = [server.post("/v1/forecast", r)[1] for r in good]
    bad = [BAD[k][0] for k in ("unsorted", "missing close", "pred_len above limit", "too few bars", "negative volume")]
    mixed = [(True, r) for r in good] + [(False, r) for r in bad]
    order = [mixed[i] for i in (0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5)]
    with ThreadPoolExecutor(len(order)) as pool:
        results = list(pool.map(lambda item: server.post("/v1/forecast", item[1]), order))
    got_good = [payload for (ok, _), (status, payload) in zip(order, results) if ok]
    assert [status for (ok, _), (status, _p) in zip(order, results) if not ok] == [422] * 5
    assert got_good == expected
    assert server.alive()
    assert server.get("/healthz")[1]["status"] == "ok"


def test_a_lookback_above_the_bars_given_uses_them_all(server):
    status, got = server.post("/v1/forecast", {**_good(), "lookback": 500})
    assert status == 200 and got["lookback"] == len(_good()["bars"])


def test_an_offset_that_moves_a_bar_before_year_one_is_a_422(server):
    """Seen in an attack: 15 bars at year 1 with +01:00, the last at +00:00: converting the others to its offset
    overflowed the datetime type (a 500 with a traceback)."""
    bars = [_bar(f"0001-01-01T{h:02d}:00:00+01:00") for h in range(15)] + [_bar("0001-01-01T23:00:00+00:00")]
    status, body = server.post("/v1/forecast", {"bars": bars, "pred_len": 2})
    assert status == 422 and body["field"] == "bars[0].timestamp", body
    assert server.alive()


def _bar(stamp: str) -> dict:
    return {"timestamp": stamp, "open": 10.0, "high": 10.5, "low": 9.5, "close": 10.2, "volume": 1e5}


def test_values_near_the_limit_give_a_finite_forecast(server):
    """Amounts near 1e36 (volume x price) overflow float32 statistics; they are taken in float64 then."""
    req = _good()
    for i, bar in enumerate(req["bars"]):
        bar.update(open=9e17, high=1e18, low=8e17 + i, close=9.5e17, volume=1e18 - i)
        bar.pop("amount", None)
    status, got = server.post("/v1/forecast", req)
    assert status == 200, got
    assert all(np.isfinite(b["amount"]) for b in got["bars"])


def test_no_auth_needed_when_no_token_is_configured(server):
    assert server.post("/v1/forecast", _good())[0] == 200


def test_requests_default_to_the_lookback_the_model_records():
    from kronos_cli.serve.schema import ForecastRequest
    from kronos_cli.serve.service import Limits, prepare

    req = ForecastRequest(bars=bars_json(series(40)), pred_len=3)
    assert len(prepare(req, Limits(), 64, "", default_lookback=20).job.x) == 20
    assert len(prepare(req, Limits(), 64).job.x) == 40  # a model that records none: every bar up to the context
    explicit = ForecastRequest(bars=bars_json(series(40)), pred_len=3, lookback=30)
    assert len(prepare(explicit, Limits(), 64, "", default_lookback=20).job.x) == 30


def test_forecast_timestamps_continue_on_the_servers_calendar():
    from kronos_cli.serve.schema import ForecastRequest
    from kronos_cli.serve.service import Limits, prepare

    bars = series(96).assign(timestamps=pd.date_range("2024-12-28", periods=96, freq="h"))  # around the clock
    req = ForecastRequest(bars=bars_json(bars), pred_len=30)
    plain = prepare(req, Limits(), 64).future
    on_xnys = prepare(req, Limits(), 64, calendar="XNYS").future
    assert plain[0] == bars.timestamps.iloc[-1] + pd.Timedelta(hours=1)  # the bars' own sessions: 24 hours
    assert plain[0] == pd.Timestamp("2025-01-01 00:00")  # New Year's night, as the bars trade
    assert on_xnys[0] == pd.Timestamp("2025-01-02 09:30")  # New Year's Day is an NYSE holiday


def test_an_outlier_bar_never_gives_a_negative_price_and_the_clip_is_reported(server, library_predictor):
    """A bar with close 1e18 among prices near 100 gave forecast closes of -7.4e14 and negative amounts."""
    bars = series(40, seed=2)
    bars.loc[30, ["open", "high", "low", "close"]] = 1e18
    req = {"bars": bars_json(bars), "pred_len": 6, "samples": 8, "seed": 5, "temperature": 1.5, "raw": True}
    status, got = server.post("/v1/forecast", req)
    assert status == 200, got
    values = _values(got["bars"])
    assert (values[:, :4] > 0).all() and (values[:, 4:] >= 0).all()
    want = forecast_series(
        library_predictor,
        bars,
        ForecastSpec(6, library_predictor.max_context, sampling=Sampling(temperature=1.5, paths=8, seed=5)),
        raw=True,
    )
    assert got["clipped_values"] == want.clipped > 0
    np.testing.assert_array_equal(values, want.table[list(FEATURES)].to_numpy())


def test_bars_that_are_not_candles_are_repaired_and_counted_or_refused(server):
    req = {"bars": bars_json(series(40, seed=6)), "pred_len": 3, "seed": 1}
    req["bars"][-2]["high"] = req["bars"][-2]["low"] * 0.5  # high below low
    status, got = server.post("/v1/forecast", req)
    assert status == 200 and got["input_bars_repaired"] == 1, got
    status, got = server.post("/v1/forecast", {**req, "bad_candles": "refuse"})
    assert status == 422 and got["field"] == "bars", got
    assert "1 bar(s) whose high is below the open or close" in got["error"]


@pytest.mark.slow
def test_a_model_that_records_its_calendar_is_served_on_it(tmp_path, tiny_pair):
    """A run on XNYS records it beside the weights; the server continues US bars past Good Friday without
    --calendar, and a recorded calendar that names nothing stops the server in one line."""
    from kronos_cli.model.checkpoint import save_checkpoint
    from tests.serve.conftest import start_server, stop_server

    tok, model = tiny_pair
    conventions = {"max_context": 64, "clip": 5.0, "lookback_window": 30, "predict_window": 5, "calendar": "XNYS"}
    save_checkpoint(tok, tmp_path / "tok", conventions)
    save_checkpoint(model, tmp_path / "model", conventions)
    bars = series(40).assign(timestamps=pd.bdate_range(end="2024-03-28", periods=40))  # Thursday before Good Friday
    srv = start_server(["--tokenizer", tmp_path / "tok", "--model", tmp_path / "model"], tmp_path / "server.log")
    try:
        status, got = srv.post("/v1/forecast", {"bars": bars_json(bars), "pred_len": 2, "seed": 1})
    finally:
        stop_server(srv)
    assert status == 200, got
    assert [b["timestamp"][:10] for b in got["bars"]] == ["2024-04-01", "2024-04-02"]
    save_checkpoint(model, tmp_path / "model", {**conventions, "calendar": "NOPE"})
    with pytest.raises(
        AssertionError, match="sessions as 'NOPE', which names no market this version knows; pass --calendar"
    ):
        start_server(["--tokenizer", tmp_path / "tok", "--model", tmp_path / "model"], tmp_path / "bad.log")
