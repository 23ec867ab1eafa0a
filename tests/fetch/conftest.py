"""Recorded responses for the fetch tests: vcrpy plays the cassettes in `cassettes/` (written by `build.py`) to the
real client libraries, with record_mode "none", so no test touches the network; each test checks every recorded
exchange was used."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import pytest

# yfinance's own switch to plain `requests` (vcrpy records requests and urllib3, not curl_cffi); read when yfinance
# is first imported, which the tests do after this.
os.environ["YF_DISABLE_CURL_CFFI"] = "1"

CASSETTES = Path(__file__).parent / "cassettes"


@pytest.fixture(autouse=True)
def _logs_reach_caplog():
    """A CLI test earlier in the session leaves the package's logger not propagating (`setup_logging`): the
    retry warnings these tests read through caplog must reach the root logger."""
    logger = logging.getLogger("kronos_cli")
    before = logger.propagate
    logger.propagate = True
    yield
    logger.propagate = before


@pytest.fixture
def cassette():
    """`with cassette("name.yaml"): ...` plays a cassette and checks that every exchange in it was played."""
    vcr = pytest.importorskip("vcr")
    player = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query"])

    @contextlib.contextmanager
    def play(name: str):
        _forget_yahoo_session()
        with player.use_cassette(str(CASSETTES / name)) as c:
            yield c
        unplayed = [r.uri for i, (r, _) in enumerate(c.data) if not c.play_counts[i]]
        assert not unplayed, f"{name}: exchanges not played: {unplayed}"

    return play


def _forget_yahoo_session() -> None:
    """yfinance keeps one session with its crumb and a response cache for the process: each cassette starts bare."""
    with contextlib.suppress(ImportError):
        from yfinance import data

        data.SingletonMeta._instances.pop(data.YfData, None)
        data.YfData.cache_get.cache_clear()


@pytest.fixture(autouse=True)
def no_yahoo_disk_cache(monkeypatch):
    """yfinance's time-zone and cookie caches on disk (under the user's cache directory) are left alone."""
    with contextlib.suppress(ImportError):
        from yfinance import cache

        monkeypatch.setattr(cache._TzCacheManager, "_tz_cache", cache._TzCacheDummy())
        monkeypatch.setattr(cache._CookieCacheManager, "_Cookie_cache", cache._CookieCacheDummy())
    yield
    _forget_yahoo_session()


@pytest.fixture
def no_wait():
    """Retries without waiting (the back-off's length is tenacity's business, not these tests')."""
    from kronos_cli.fetch.request import Politeness

    return Politeness(attempts=3, first_wait_s=0.0, pause_s=0.0)
