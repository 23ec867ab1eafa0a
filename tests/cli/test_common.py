"""Progress lines: a rate only once it was measured over enough time, never 0.0/s or millions a second; tables
piped into a file mark their best cells with '*' (bold would not show)."""

from __future__ import annotations

import logging

import pytest

from kronos_cli.cli import common
from kronos_cli.cli.common import Rate, StepProgress, print_tables
from kronos_cli.core.tables import Table


def test_a_rate_needs_a_second_of_work_and_the_time_left_follows_it():
    rate = Rate(now=0.0)
    assert rate.observe(0.2, 1) is None and rate.describe(1, 4) == []  # one quick step: no "0.0/s", no "~0 s"
    assert rate.observe(1.5, 3) == 2.0  # 3 steps in 1.5 s
    assert rate.describe(3, 7_003, "windows") == ["2.0 windows/s", "~58 min left"]
    assert rate.observe(1.6, 400) == 2.0  # a cached burst 0.1 s later changes nothing until a second has passed
    assert rate.observe(2.5, 803) == 800.0  # then it counts over the span since the last measurement
    assert rate.describe(803, 804) == ["800/s", "~1 s left"]  # never "~0 s left" while work remains
    assert rate.describe(804, 804) == ["800/s"]


@pytest.fixture
def progress_lines(monkeypatch):
    """The plain progress lines (stderr is no terminal under pytest) and a clock the test moves."""
    clock = [0.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: clock[0])
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("kronos_cli.cli")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield clock, lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_cached_windows_then_the_next_model_show_no_absurd_rate(progress_lines):
    clock, lines = progress_lines
    with StepProgress("evaluate", unit="windows") as bar:
        for done in (1024, 2048, 3000):  # the first model's forecasts all come from the cache
            clock[0] += 0.001
            bar.update(done, 3000)
        clock[0] += 3.0  # the next model loads and forecasts its first batch
        bar.update(1000, 3000)
        clock[0] += 0.5
        bar.update(2000, 3000)
        clock[0] += 2.0
        bar.update(3000, 3000)
    assert lines == [
        "evaluate: 1024/3000",
        "evaluate: 2048/3000",
        "evaluate: 3000/3000",
        "evaluate: 1000/3000 (333 windows/s, ~6 s left)",  # measured from the first model's end
        "evaluate: 2000/3000 (333 windows/s, ~3 s left)",
        "evaluate: 3000/3000 (800 windows/s)",
    ]


def test_a_first_step_shows_no_rate(progress_lines):
    clock, lines = progress_lines
    with StepProgress("backtest") as bar:
        bar.update(0, 4, "Qlib backtest of last")
        clock[0] += 2.0
        bar.update(1, 4, "Qlib backtest of mean")
    assert lines == ["backtest: Qlib backtest of last", "backtest: Qlib backtest of mean (2.0 s each, ~6 s left)"]


def test_piped_tables_mark_the_best_of_a_column_with_a_star(capsys):
    table = Table("leaderboard", ["model", "MAE %"], caption="Best of each column marked")
    table.add("fine-tuned", "1.75%")
    table.add("last close", "1.84%")
    table.bold.add((0, 1))
    print_tables([table])  # stdout is no terminal under pytest
    out = capsys.readouterr().out
    assert "1.75%*" in out and "1.84%*" not in out and "Best of each column marked" in out


def test_an_error_line_is_clipped_whatever_it_quotes():
    from kronos_cli.cli.common import MAX_ERROR_LINE, error_text
    from kronos_cli.core.errors import KronosError

    text = error_text(KronosError("bad file " + "z" * 1_000_000))
    assert len(text) < MAX_ERROR_LINE + 100 and "characters cut" in text
    assert error_text(KronosError("short and [bold]plain[/bold]")) == "short and \\[bold]plain\\[/bold]"
