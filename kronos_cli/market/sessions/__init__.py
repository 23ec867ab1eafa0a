"""Which bars a market has: bar sizes, and the expected bar grid of a market's calendar.

A missing bar is a bar the market should have had and did not; lunch breaks, nights, weekends and holidays are
not gaps. The grid comes from one of:
- an exchange's calendar from the maintained `exchange_calendars` library (`XSHG`, `XNYS`, `XHKG`, ...): its
  sessions, lunch breaks and early closes, in the exchange's local time (`grids`);
- `24/7`: every bar around the clock (crypto);
- `forex` (also `24/5`, `fx`): Sunday 17:00 to Friday 17:00 New York time, in the clock the vendor stamps its bars
  with (UTC, New York, broker time) (`forex`);
- `infer`: the sessions seen in the data: the days on which any symbol has a bar, and on each day the times of
  day seen on at least half of the days, between that day's first and last bar (so early closes are kept).

Intraday bars are labelled by their start (09:30 is the bar from 09:30 to 09:35) or by their end (09:35 is that
same bar), `bar_label: start | end`. Forecast timestamps continue a series on its calendar, named or inferred from
its bars (`infer`, `future`).
"""

from kronos_cli.market.sessions.calendars import (
    calendar_names,
    canonical_calendar,
    check_calendar_name,
    exchange_tz,
    fitted_grid,
    is_exchange,
    session_grid,
)
from kronos_cli.market.sessions.forex import FOREX, ForexGrid
from kronos_cli.market.sessions.future import WIDE_BAR_DAYS, future_bars, future_timestamps
from kronos_cli.market.sessions.grids import (
    ALWAYS_OPEN,
    INFER,
    NS_PER_DAY,
    NS_PER_MIN,
    AlwaysOpen,
    BarFreq,
    ExchangeGrid,
    InferredGrid,
    SessionGrid,
    bars_per_day,
    fit,
    parse_freq,
)
from kronos_cli.market.sessions.infer import closes_on_weekends, infer_calendar, weekend_gap

__all__ = [
    "ALWAYS_OPEN",
    "FOREX",
    "INFER",
    "NS_PER_DAY",
    "NS_PER_MIN",
    "WIDE_BAR_DAYS",
    "AlwaysOpen",
    "BarFreq",
    "ExchangeGrid",
    "ForexGrid",
    "InferredGrid",
    "SessionGrid",
    "bars_per_day",
    "calendar_names",
    "canonical_calendar",
    "check_calendar_name",
    "closes_on_weekends",
    "exchange_tz",
    "fit",
    "fitted_grid",
    "future_bars",
    "future_timestamps",
    "infer_calendar",
    "is_exchange",
    "parse_freq",
    "session_grid",
    "weekend_gap",
]
