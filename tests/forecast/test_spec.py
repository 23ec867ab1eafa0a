"""One forecast specification: every setting resolved in one order (given, config, checkpoint, release, default)."""

from __future__ import annotations

import pytest

from kronos_cli import config
from kronos_cli.core.errors import KronosError
from kronos_cli.forecast.calibrated import Calibration
from kronos_cli.forecast.spec import DEFAULT_CLIP, ForecastSpec, resolve_sampling, resolve_spec, sampling_of_config
from kronos_cli.model.config import DEFAULT_CONTEXT, Conventions
from kronos_cli.model.sampling import Sampling

RECORDED = Conventions(max_context=300, lookback_window=90, predict_window=7, clip=4.0, calendar="XNYS")


def _cfg(*overrides: str):
    return config.load(None, ["data.max_context=200", "data.lookback_window=60", "data.predict_window=5", *overrides])


def test_the_context_comes_from_the_flag_then_config_then_checkpoint_then_release_then_default():
    cfg = _cfg()
    assert resolve_spec(context=100, cfg=cfg, recorded=RECORDED, released_context=2048).context == 100
    assert resolve_spec(cfg=cfg, recorded=RECORDED, released_context=2048).context == 200
    assert resolve_spec(horizon=3, recorded=RECORDED, released_context=2048).context == 300
    assert resolve_spec(horizon=3, released_context=2048).context == 2048
    assert resolve_spec(horizon=3).context == DEFAULT_CONTEXT


def test_horizon_lookback_and_clip_follow_the_same_order():
    cfg = _cfg("data.clip=3.0")
    given = resolve_spec(horizon=9, lookback=30, cfg=cfg, recorded=RECORDED)
    assert (given.horizon, given.lookback, given.trained_lookback, given.clip) == (9, 30, 60, 3.0)
    from_config = resolve_spec(cfg=cfg, recorded=RECORDED)
    assert (from_config.horizon, from_config.lookback, from_config.trained_lookback) == (5, None, 60)
    recorded = resolve_spec(recorded=RECORDED)
    assert (recorded.horizon, recorded.trained_lookback, recorded.clip) == (7, 90, 4.0)
    assert resolve_spec(horizon=1).clip == DEFAULT_CLIP


def test_a_horizon_nobody_gives_is_one_line_naming_the_setting():
    with pytest.raises(KronosError, match="pred_len is not set") as err:
        resolve_spec()
    assert err.value.settings == ("pred_len",)


@pytest.mark.parametrize(
    "kwargs, setting",
    [
        ({"horizon": 0}, "pred_len"),
        ({"horizon": 3, "context": 1}, "max_context"),
        ({"horizon": 3, "lookback": 1}, "lookback"),
        ({"horizon": 3, "clip": 0.0}, "clip"),
        ({"horizon": 3, "dtype": "fp8"}, "dtype"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(kwargs, setting):
    with pytest.raises(KronosError) as err:
        ForecastSpec(**kwargs)
    assert err.value.settings == (setting,)


def test_sampling_given_then_calibration_then_the_reference():
    calibration = Calibration(temperature=0.4, top_p=0.7, path="sampling.json")
    assert resolve_sampling() == Sampling(temperature=1.0, top_p=0.9)
    assert resolve_sampling(calibration=calibration) == Sampling(temperature=0.4, top_p=0.7)
    chosen = resolve_sampling(temperature=1.3, top_k=5, paths=4, seed=2, calibration=calibration)
    assert chosen == Sampling(temperature=1.3, top_k=5, top_p=0.7, paths=4, seed=2)


def test_a_runs_sampling_is_its_backtest_settings_or_its_calibration():
    cfg = _cfg("backtest.temperature=0.6", "backtest.top_p=0.95", "backtest.sample_count=8", "seed=11")
    plain = sampling_of_config(cfg)
    assert plain == Sampling(temperature=0.6, top_k=0, top_p=0.95, paths=8, seed=11)
    tuned = sampling_of_config(cfg, Calibration(temperature=1.2, top_p=0.8, path="s.json"), paths=3)
    assert tuned == Sampling(temperature=1.2, top_k=0, top_p=0.8, paths=3, seed=11)
    assert resolve_spec(cfg=cfg).sampling == plain  # the spec of a run samples as its backtest does


def test_the_spec_builds_a_predictor_fixed_to_it(tiny_pair):
    tok, model = tiny_pair
    spec = ForecastSpec(4, context=64, clip=3.0, dtype="bf16", device="cpu")
    predictor = spec.predictor(model, tok)
    assert (predictor.max_context, predictor.clip, predictor.dtype, str(predictor.device)) == (64, 3.0, "bf16", "cpu")


def test_the_compile_setting_follows_the_order_and_reaches_the_predictor(tiny_pair):
    tok, model = tiny_pair
    cfg = _cfg("forecast.compile=on")
    assert resolve_spec(compile="off", cfg=cfg).compile == "off"
    assert resolve_spec(cfg=cfg).compile == "on"
    assert resolve_spec(horizon=2).compile == "auto"
    assert ForecastSpec(2, compile=False).compile == "off"  # YAML reads off as false
    with pytest.raises(KronosError) as err:
        ForecastSpec(2, compile="sometimes")
    assert err.value.settings == ("compile",)
    auto = ForecastSpec(2, context=64, device="cpu").predictor(model, tok)
    assert auto._plan(5, invariant=False).compile_mode is None  # five steps never pay for a compile
    assert auto._plan(10**6, invariant=True).compile_mode is None  # a row's bits must not depend on its batch
    on = ForecastSpec(2, context=64, device="cpu", compile="on").predictor(model, tok)
    assert on.compile == "on" and on._plan(5, invariant=True).compile_mode == "default"
