"""Property-based: any `key=value` overrides, and any YAML config file (random text, or random nested
mappings over the real sections and keys), give a config or a user error (one line per problem), never a
traceback (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kronos_cli import config
from kronos_cli.core.errors import KronosError

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


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2024-01-01", "2024-13-45", "5min", "XSHG", "24/7", "auto", "lora", "val_ic"]),
)
SECTIONS = ["data", "training", "backtest", "evaluate", "model", "logging", "csv", "lora", "run_name", "seed"]
NAMES = st.sampled_from([*SECTIONS, *[k.split(".")[-1] for k in KEYS if k], "unknown"])
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.dictionaries(NAMES, DOCUMENTS, max_size=5), st.text(max_size=80)))
def test_any_yaml_file_gives_a_config_or_a_user_error(tmp_path_factory, document):
    import yaml

    path = tmp_path_factory.mktemp("cfg") / "run.yaml"
    text = document if isinstance(document, str) else yaml.safe_dump(document)
    path.write_text(text)
    try:
        config.load(path)
    except KronosError as exc:
        assert str(exc).strip()
