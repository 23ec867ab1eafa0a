"""Market data from public sources (yfinance, akshare, ccxt) into the bar files or Qlib provider `kronos prep` reads,
updated incrementally."""
