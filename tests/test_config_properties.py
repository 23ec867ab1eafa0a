"""Property-based: any `key=value` overrides give a config or a user error (one line per problem), never a
traceback, whatever the keys and values (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kronos_cli import config
from kronos_cli.errors import KronosError

KEYS = [
    "data.freq",
    "data.lookback_window",
    "data.train_time_range",
    "data.instrument",
    "data.csv.calendar",
    "data.csv.columns",
    "training.epochs",
    "training.method",
    "training.lora.targets",
    "training.select_by",
    "backtest.topk",
    "backtest.limit_threshold",
    "nope.x",
    "data",
    "",
]
VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True).map(str),
    st.lists(st.text(max_size=5), max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
    st.sampled_from(["{a: b}", "[", "]", "{", "null", "~", "true", "1e999", "-", "2024-13-45", "5min", "XSHG"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=3), st.booleans())
def test_any_overrides_give_a_config_or_a_user_error(pairs, without_equals):
    overrides = [f"{k}{v}" if without_equals else f"{k}={v}" for k, v in pairs]
    try:
        config.load(None, overrides)
    except KronosError as exc:  # the CLI prints it as one line per problem, exit 2
        assert str(exc).strip()


def test_a_yaml_date_that_is_not_one_is_a_user_error(tmp_path):
    import pytest

    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  start_time: 2024-13-45\n")
    with pytest.raises(config.ConfigError, match="a value YAML reads as a date is not one .*month must be in 1..12"):
        config.load(path)
    with pytest.raises(config.ConfigError, match="data.start_time is not a date: '2024-13-45'"):
        config.load(None, ["data.start_time=2024-13-45"])
