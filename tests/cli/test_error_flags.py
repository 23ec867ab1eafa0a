"""The library names its settings, the command line its flags: a library error about `pred_len` reads
`--pred-len` when `kronos predict` prints it, and names no flag when a script calls the library."""

from __future__ import annotations

import pandas as pd
import pytest

from kronos_cli.cli.common import error_text
from kronos_cli.core.errors import KronosError
from kronos_cli.forecast.predictor import check_dtype
from kronos_cli.forecast.series import parse_quantiles


def test_library_errors_name_settings_not_flags():
    with pytest.raises(KronosError) as bad:
        parse_quantiles("0.1,x")
    assert bad.value.settings == ("quantiles",) and "--" not in str(bad.value)
    with pytest.raises(KronosError) as bad:
        check_dtype("int3")
    assert str(bad.value).startswith("dtype must be one of") and bad.value.settings == ("dtype",)


def test_the_cli_shows_each_setting_as_the_commands_flag_and_leaves_other_words():
    exc = KronosError(
        "the bars given are 9 rows, fewer than lookback 30; lower lookback (lookbacks, a.lookback)", "lookback"
    )
    text = error_text(exc, {"lookback": "--lookback", "pred_len": "--pred-len"})
    assert text == "the bars given are 9 rows, fewer than --lookback 30; lower --lookback (lookbacks, a.lookback)"
    assert error_text(KronosError("pred_len must be > 0", ("pred_len", "samples")), {}) == "pred_len must be > 0"
    assert error_text(pd.errors.ParserError("x y"), {"x": "--x"}) == "x y"  # no settings: as it is
